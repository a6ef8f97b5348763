"""The items pages: the search with its filters, an item's page, its previews, original and proofs.

Every page calls the same services as `GET /v1/search`, `GET /v1/items/{id}`
and the candidates and links routes, with the caller's role: a hidden item is
not found (404, the same page as an unknown id) and is missing from lists and
near-duplicates; an auditor gets the services' non-personal view, without any
picture, player, metadata or provenance; a contributor is refused by the
route matrix.

Previews (`archive.services.previews`, helper B's) are shown only to
custodians and investigators. A page that shows any records ONE access
custody event listing the items it shows, and each `<img>` carries a view
token bound to the session, that page view and the item, so an image request
needs no event of its own and cannot be made without a page view. Until the
previews service exists, no thumbnail is drawn (and the preview route is 404).

The original (`/items/{id}/original`) is the API's download route itself,
answered with the item's media type so the `<video>` player can play it; the
player loads nothing until asked (`preload="none"`), so a page view never
opens an original: only pressing play (or the link) does, as an access event.

`/items/{id}/events/{seq}/proof` hands the browser what it needs to check an
event's inclusion itself (`static/item.js`, RFC 9162 with WebCrypto): the
entry's exact bytes, the audit path and the signed checkpoint.
"""

from __future__ import annotations

import base64
import logging
import secrets
from types import ModuleType
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.http.routes.records import MAX_PAGE, Page, who
from api.web.forms import csrf_ok
from api.web.i18n import N_
from api.web.render import language_of, render
from archive.roles import Role, sees_personal
from archive.services.errors import Forbidden, Invalid, Locked, NotFound, ServiceError

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])
log = logging.getLogger("api.web.items")

PAGE_SIZE = 50
SUGGESTED_INCIDENTS = 300  # refs in the link form's datalist: a choice, not the whole register
PREVIEW_CACHE = "no-store"  # a decrypted picture must not stay in the browser's disk cache after sign-out
MEDIA_POLICY = "default-src 'none'; sandbox"  # a picture or an original opened on its own can run nothing
VICTIM_CATEGORIES = ("child", "woman", "civilian", "torture", "medical", "media", "civil_defence")
LINKED_CHOICES = {"": None, "yes": True, "no": False}
CERTAINTIES = ("confirmed", "probable", "possible")
# The search's text filters, by their `GET /v1/search` names (and the form's labels).
TEXT_FILTERS: tuple[tuple[str, str], ...] = (
    ("from", N_("Incident from (date)")),
    ("to", N_("Incident to (date)")),
    ("governorate", N_("Governorate")),
    ("party", N_("Party")),
    ("type", N_("Incident type")),
    ("source_kind", N_("Source kind")),
    ("captured_from", N_("Captured from (date)")),
    ("captured_to", N_("Captured to (date)")),
    ("device", N_("Device (make or model)")),
    ("sha256", N_("SHA-256")),
    ("similar_to", N_("Similar to item")),
    ("box", N_("Area (lat1,lon1,lat2,lon2)")),
)
# The filters offered as a list of the vocabulary's terms (translated labels), by the vocabulary they come from
# (`api.web.routes.records.choices`): a key never has to be known or typed, in any language.
VOCAB_FILTERS = {"governorate": "governorates", "party": "parties", "type": "incident_types",
                 "source_kind": "source_kinds"}
CATEGORY_LABELS = {
    "child": N_("children"), "woman": N_("women"), "civilian": N_("civilians"), "torture": N_("torture"),
    "medical": N_("medical personnel"), "media": N_("media workers"), "civil_defence": N_("civil defence"),
}
STATE_LABELS = {"candidate": N_("to decide"), "confirmed": N_("confirmed"), "rejected": N_("rejected")}
DECISIONS = {"confirm": "confirmed", "reject": "rejected"}
STATUS_LABELS = {"preserved": N_("preserved"), "degraded": N_("degraded"), "merged": N_("merged"),
                 "received": N_("received"), "processing": N_("processing")}
REPLICA_LABELS = {"verified": N_("verified"), "missing": N_("missing"), "corrupt": N_("corrupt"),
                  "pending": N_("pending")}
OUTCOME_LABELS = {"success": N_("success"), "failure": N_("failure"), "warning": N_("warning")}
EVENT_LABELS = {  # the custody log's event types (PREMIS names, and the archive's own)
    "ingestion": N_("ingestion"), "message digest calculation": N_("message digest calculation"),
    "encryption": N_("encryption"), "replication": N_("replication"), "fixity check": N_("fixity check"),
    "validation": N_("validation"), "format identification": N_("format identification"),
    "metadata extraction": N_("metadata extraction"), "deletion": N_("deletion"), "transfer": N_("transfer"),
    "dissemination": N_("dissemination"), "access": N_("access"), "creation": N_("creation"),
    "information package creation": N_("information package creation"), "fingerprint": N_("fingerprint"),
    "metadata modification": N_("metadata modification"), "recovery": N_("recovery"),
    "policy assignment": N_("policy assignment"),
}
EXPLAINED = ("deletion", "access", "metadata modification")  # the events whose reason the timeline shows
EXPLAINED_BY = ("reason", "action", "change")  # the detail naming it, first found
CHANNEL_LABELS = {"upload": N_("web upload"), "email": N_("email"), "messaging": N_("messaging app"),
                  "social_media": N_("social media"), "field_researcher": N_("field researcher"),
                  "legacy_disk": N_("legacy disk")}  # `archive.records.vocab.CHANNELS`
KIND_LABELS = {"item_incident": N_("incident"), "item_victim": N_("victim"), "source_item": N_("source"),
               "same_footage": N_("same footage"), "not_same_footage": N_("not the same footage")}
PATHS = {"incident": "/incidents/", "victim": "/victims/", "source": "/sources/", "item": "/items/"}
CERTAINTY_LABELS = {"confirmed": N_("confirmed"), "probable": N_("probable"), "possible": N_("possible")}
# EXIF orientation (TIFF tag 274): how the stored pixels are to be turned for display, not a bare number.
ORIENTATION_LABELS = {1: N_("upright"), 2: N_("mirrored"), 3: N_("turned 180°"), 4: N_("mirrored, turned 180°"),
                      5: N_("mirrored, turned 90° anticlockwise"), 6: N_("turned 90° clockwise"),
                      7: N_("mirrored, turned 90° clockwise"), 8: N_("turned 90° anticlockwise")}
FIELD_LABELS = {"media_type": N_("Media type"), "captured_at": N_("Captured at"), "altitude": N_("Altitude"),
                "make": N_("Camera make"), "model": N_("Camera model"), "orientation": N_("Orientation"),
                "width": N_("Width"), "height": N_("Height"), "duration": N_("Duration (seconds)")}


def labels(request: Request) -> dict[str, Any]:
    """The translated labels of the states and fields the item pages show."""
    from api.web.routes.records import LABELS as RECORD_LABELS

    _ = language_of(request).gettext
    tables = {"change_labels": RECORD_LABELS["changes"], "status_labels": STATUS_LABELS,
              "replica_labels": REPLICA_LABELS, "outcome_labels": OUTCOME_LABELS, "certainty_labels": CERTAINTY_LABELS,
              "event_labels": EVENT_LABELS, "field_labels": FIELD_LABELS, "states": STATE_LABELS,
              "kind_labels": KIND_LABELS, "channel_labels": CHANNEL_LABELS}
    return {name: {k: _(v) for k, v in table.items()} for name, table in tables.items()}


# --- previews (helper B's service; none shown until it exists) ---------------------------------------------------

def previews_service() -> ModuleType | None:
    """`archive.services.previews`, or None while it is not there (then no thumbnail is drawn)."""
    try:
        from archive.services import previews
    except ImportError:
        return None
    return previews


def _session_of(request: Request) -> str:
    caller = request.state.caller
    return str(getattr(caller, "session_id", "") or caller.token_id)


def preview_state(request: Request, item_ids: list[str], page_name: str) -> tuple[dict[str, str], list[str]]:
    """The preview URL of each item shown, after ONE access event for this page view (none for roles that see
    no previews, or when no item is shown); and the items whose previews exist but are locked (no catalog key
    for the view tokens, or no preview identity to open them): the page says so instead of "no preview"."""
    archive, role = who(request)
    service = previews_service()
    wanted = list(dict.fromkeys(item_ids))
    if service is None or not sees_personal(role) or not wanted:
        return {}, []
    wanted = service.with_previews(archive, wanted)  # no <img> (and no request) for items without one
    if not wanted:
        return {}, []
    view = service.new_view_id() if hasattr(service, "new_view_id") else secrets.token_hex(8)
    session = _session_of(request)
    try:
        archive.runtime.keys.preview_identities()  # the images would not open: draw none, record no view
        links = {item: f"/items/{item}/preview?v={view}&t={service.view_token(archive, session, view, item)}"
                 for item in wanted}
    except Locked:
        return {}, wanted
    service.record_preview_view(archive, wanted, role=role, page=page_name)
    return links, []


@router.get("/items/{item_id}/preview")
def preview(request: Request, item_id: str, v: str = Query("", max_length=64),
            t: str = Query("", max_length=256)) -> Response:
    """An item's thumbnail or poster frame, for an image of a page view that recorded its access."""
    archive, role = who(request)
    service = previews_service()
    if service is None:
        raise NotFound("no preview")
    if not sees_personal(role):
        raise Forbidden("previews need the custodian or investigator role")
    if not v or not t or not service.check_view_token(archive, _session_of(request), v, item_id, t):
        raise NotFound("no such preview: a preview is shown only on the page view that showed it")
    data, media_type = service.preview_for(archive, item_id, role=role)
    return Response(data, media_type=media_type, headers={"Cache-Control": PREVIEW_CACHE,
                                                          "Content-Security-Policy": MEDIA_POLICY,
                                                          "X-Content-Type-Options": "nosniff"})


# --- the search --------------------------------------------------------------------------------------------------

def _search_query(params: dict[str, str]) -> Any:
    from archive.services.record_search import Query as Search

    def given(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value or None

    category = given("victim")
    if category is not None and category not in VICTIM_CATEGORIES:
        raise Invalid(f"victim: {category[:40]!r} is not one of the categories")
    linked = params.get("linked", "")
    if linked not in LINKED_CHOICES:
        raise Invalid("linked: yes, no or empty")
    return Search(date_from=given("from"), date_to=given("to"), governorate=given("governorate"), box=given("box"),
                  party=given("party"), type_=given("type"), category=category, source_kind=given("source_kind"),
                  linked=LINKED_CHOICES[linked], captured_from=given("captured_from"),
                  captured_to=given("captured_to"), device=given("device"), sha256=given("sha256"),
                  similar_to=given("similar_to"))


def _next_link(request: Request, after: str) -> str:
    from urllib.parse import urlencode

    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
    return "/items?" + urlencode([*kept, ("after", after)])


@router.get("/items")
def items_page(request: Request, limit: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE),
               after: str | None = Query(None, max_length=200)) -> Response:
    """The search (the options of `GET /v1/search`) as a form, its items paged; for auditors the list of items.

    Both services page in SQL (keyset on received time and id, hidden items taken out before the cut), so a
    page costs one page of rows whatever the archive holds; only its items' previews are recorded and drawn.
    """
    from archive.services.items import count_items, list_items
    from archive.services.record_search import search_records

    archive, role = who(request)
    params = {k: v for k, v in request.query_params.items() if k not in ("limit", "after")}
    error: str | None = None
    incidents: list[dict[str, Any]] = []
    data: list[dict[str, Any]] = []
    next_id: str | None = None
    total = 0
    if role == Role.AUDITOR:
        try:
            listed = [entry.as_dict() for entry in list_items(archive, role=role, limit=limit + 1, after=after)]
        except Invalid as exc:
            listed, error = [entry.as_dict() for entry in list_items(archive, role=role, limit=limit + 1)], str(exc)
        data = listed[:limit]
        next_id = str(data[-1]["id"]) if len(listed) > limit and data else None
        total = count_items(archive, role=role)
    else:
        try:
            found = search_records(archive, _search_query(params), role=role, limit=limit, after=after)
        except Invalid as exc:
            found, error = {"items": [], "incidents": [], "next": None, "total": 0}, str(exc)
        data, incidents = found["items"], found["incidents"]
        next_id, total = found.get("next"), int(found.get("total") or 0)
    shown = Page(data=data, next=next_id)
    thumbs, previews_locked = preview_state(request, [r["id"] for r in shown.data], request.url.path)
    _ = language_of(request).gettext
    options = {} if role == Role.AUDITOR else vocab_options(request, archive, role, params)
    return render(request, "items.html", status_code=422 if error else 200, rows=shown.data,
                  next_link=_next_link(request, shown.next) if shown.next else None, total=total,
                  incidents=incidents[:PAGE_SIZE], thumbs=thumbs, previews_locked=previews_locked, params=params,
                  error=error, auditor=role == Role.AUDITOR, options=options,
                  text_filters=[(n, _(label)) for n, label in TEXT_FILTERS],
                  categories=[(k, _(v)) for k, v in CATEGORY_LABELS.items()],
                  governorate_labels=dict(options.get("governorate", [])), **labels(request))


def vocab_options(request: Request, archive: Any, role: Role,
                  params: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Each vocabulary filter's (key, translated label) choices; a key given in the address that the vocabulary
    does not hold is offered as itself, so the form still shows what was asked (and the service says why not)."""
    from api.web.routes.records import choices

    _ = language_of(request).gettext
    offered = choices(archive, role)
    options: dict[str, list[tuple[str, str]]] = {}
    for name, vocabulary in VOCAB_FILTERS.items():
        pairs = [(key, _(label)) for key, label in offered.get(vocabulary, [])]
        asked = params.get(name, "").strip()
        if asked and asked not in {key for key, _label in pairs}:
            pairs.append((asked, asked))
        options[name] = pairs
    return options


# --- one item ----------------------------------------------------------------------------------------------------

def _timeline(archive: Any, item_id: str) -> dict[str, Any]:
    """The item's custody events, each with `why`: for a deletion, access or modification, the reason, action
    or change its details give (public log content, never personal), so "deletion" is never left unexplained."""
    from archive.custody.service import item_timeline

    timeline = item_timeline(archive, item_id)
    for event in timeline["events"]:
        details = event.get("details") or {}
        said = next((k for k in EXPLAINED_BY if isinstance(details.get(k), str) and details[k]), None)
        wanted = said is not None and event.get("type") in EXPLAINED
        event["why"] = str(details[said])[:300] if wanted and said else None
        event["why_is_change"] = said == "change"  # a record change's code: shown by its translated label
    return timeline


def _links(archive: Any, item_id: str, role: Role) -> list[dict[str, Any]]:
    from archive.services.links import links_of

    try:
        return [row for row in links_of(archive, item_id, role=role)["links"] if row.get("active", True)]
    except ServiceError as exc:  # locked: the links' notes are sealed; the page still shows the rest
        log.info("links of %s not shown: %s", item_id, exc)
        return []


def _incident_refs(archive: Any, role: Role) -> list[str]:
    """The refs the link form suggests (its `<datalist>`): the incidents the caller can see, the latest
    started first, at most `SUGGESTED_INCIDENTS` (clear columns only: no key needed)."""
    from archive.services.incidents import list_incidents

    try:
        rows = list_incidents(archive, role=role)
    except ServiceError as exc:
        log.info("no incident suggestions: %s", exc)
        return []
    return [str(r["ref"]) for r in reversed(rows[-SUGGESTED_INCIDENTS:]) if r.get("ref")]


def item_context(request: Request, item_id: str) -> dict[str, Any]:
    """What the item page shows the caller (hidden: NotFound, from the service)."""
    from archive.services.items import AuditedRecord, show_item

    archive, role = who(request)
    record = show_item(archive, item_id, role=role)
    timeline = _timeline(archive, record.id)
    values: dict[str, Any] = {"record": record, "events": timeline["events"],
                              "checkpoint_size": timeline["checkpoint_size"],
                              "auditor": isinstance(record, AuditedRecord), "thumbs": {}, "previews_locked": [],
                              "links": [], "certainties": CERTAINTIES, "paths": PATHS, "link_error": None,
                              "typed": {}, "incident_refs": [], **labels(request)}
    if isinstance(record, AuditedRecord):
        return values
    metadata = record.metadata or {}
    values["metadata"] = {k: v for k, v in metadata.items() if v is not None and k not in ("latitude", "longitude")}
    turned = values["metadata"].get("orientation")
    if isinstance(turned, int) and turned in ORIENTATION_LABELS:
        values["metadata"]["orientation"] = f"{language_of(request).gettext(ORIENTATION_LABELS[turned])} ({turned})"
    lat, lon = metadata.get("latitude"), metadata.get("longitude")
    values["place"] = (lat, lon) if isinstance(lat, int | float) and isinstance(lon, int | float) else None
    values["video"] = bool(record.media_type and record.media_type.startswith("video/"))
    values["links"] = _links(archive, record.id, role)
    values["incident_refs"] = _incident_refs(archive, role)
    values["thumbs"], values["previews_locked"] = preview_state(
        request, [record.id, *(c["id"] for c in record.candidates)], request.url.path)
    return values


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: str) -> Response:
    """One item: picture or poster, metadata, place, provenance, copies, custody timeline, near-duplicates."""
    return render(request, "item.html", **item_context(request, item_id))


@router.get("/items/{item_id}/original")
def original(request: Request, item_id: str) -> Response:
    """The original, through the API's own download (verified, an access custody event), with its media type so
    the page's player can play it; shown inline, never sniffed."""
    from api.http.routes.items import download_original
    from archive.exports.formats import extension
    from archive.services.items import ItemRecord, show_item

    archive, role = who(request)
    record = show_item(archive, item_id, role=role)
    answer = download_original(request, record.id)
    media = record.media_type if isinstance(record, ItemRecord) and record.media_type else None
    if media and "/" in media and all(c.isalnum() or c in "/.+-" for c in media):
        answer.headers["content-type"] = media
    answer.headers["content-disposition"] = f'inline; filename="{record.id}.{extension(media)}"'  # saved: opens
    answer.headers["content-security-policy"] = MEDIA_POLICY
    return answer


@router.get("/items/{item_id}/events/{seq}/proof")
def event_proof(request: Request, item_id: str, seq: int = Path(ge=0, le=2**62)) -> Response:
    """The inclusion proof of one of this item's events, for the browser to check: the entry's exact bytes
    (base64), its leaf index, the tree size, the audit path and the signed checkpoint. Another item's event,
    or a hidden item's, is not found."""
    from archive.custody.service import CustodyError, prove_inclusion
    from archive.services.items import show_item

    archive, role = who(request)
    record = show_item(archive, item_id, role=role)  # hidden: not found
    try:
        document = prove_inclusion(archive, seq)
    except CustodyError as exc:
        if "not covered" in str(exc) or "no checkpoint" in str(exc):
            return JSONResponse({"detail": "not covered by a checkpoint yet", "code": "not_covered"},
                                status_code=409, headers={"Retry-After": "10"})
        raise NotFound(f"no event {seq} of item {record.id}") from None
    if document["event"].get("item") != record.id:
        raise NotFound(f"no event {seq} of item {record.id}")
    entry = str(document["entry"]).encode("utf-8")
    return JSONResponse({
        "seq": seq,
        "item": record.id,
        "leaf_index": document["leaf_index"],
        "tree_size": document["tree_size"],
        "entry": base64.b64encode(entry).decode("ascii"),
        "leaf_hash": document["leaf_hash"],
        "root_hash": document["root_hash"],
        "audit_path": [base64.b64encode(bytes.fromhex(h)).decode("ascii") for h in document["inclusion_proof"]],
        "checkpoint": document["note"],
    }, headers={"Cache-Control": "no-store"})


# --- decisions: near-duplicates and links ------------------------------------------------------------------------

@router.post("/items/{item_id}/candidates/{other}/{decision}")
def decide(request: Request, item_id: str, other: str, decision: Literal["confirm", "reject"]) -> Response:
    """Confirm or reject a near-duplicate pair; htmx swaps the row's decision cell with the new state."""
    from archive.services.links import confirm_candidate, reject_candidate

    archive, role = who(request)
    service = confirm_candidate if decision == "confirm" else reject_candidate
    service(archive, item_id, other, role=role)
    candidate = {"id": other, "state": DECISIONS[decision]}
    if request.headers.get("hx-request") != "true":
        return RedirectResponse(f"/items/{item_id}#candidates", status_code=303)
    return render(request, "_item_candidate.html", item_id=item_id, c=candidate, **labels(request))


@router.post("/items/{item_id}/links")
async def add_link(request: Request, item_id: str) -> Response:
    """Link the item to an incident (by its ref); a refusal re-renders the page with the message beside the field."""
    from fastapi.concurrency import run_in_threadpool

    from archive.services.links import link

    form = await request.form()

    def text(name: str, limit: int) -> str:
        value = form.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    incident, certainty, note = text("incident", 128), text("certainty", 16), text("note", 4000)
    archive, role = who(request)
    error: str | None = None
    if not incident:
        error = language_of(request).gettext("Give the incident's reference.")
    elif certainty and certainty not in CERTAINTIES:
        error = language_of(request).gettext("Choose a certainty from the list.")
    else:
        try:
            await run_in_threadpool(link, archive, item_id, incident, role=role, b_type="incident",
                                    certainty=certainty or None, note=note or None)
        except NotFound:  # (the item itself is checked again below: unknown or hidden, the page is a 404)
            error = language_of(request).gettext("No incident has this reference (or id).")
        except Invalid as exc:
            error = str(exc)
    if error is None:
        return RedirectResponse(f"/items/{item_id}#links", status_code=303)
    values = await run_in_threadpool(item_context, request, item_id)
    values.update(link_error=error, typed={"incident": incident, "certainty": certainty, "note": note})
    return render(request, "item.html", status_code=422, **values)
