"""The export page: choose incidents or items, the purpose and the recipient, review the plan, download the bundle.

"Review" (htmx POST /export/plan) shows `plan_export`'s answer: what the
bundle will carry and what it withholds, and why (counts and reasons, never
identities). "Download bundle" (POST /export/bundle) streams the bundle as
POST /v1/exports does (`api.http.routes.exports.stream_bundle`: the same
service, the same two custody events, the same `Content-Disposition:
attachment`). A refusal before the first byte re-renders the form with the
message beside the field it is about (422; an htmx request gets 200, since
htmx swaps no error answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.http.routes.records import who
from api.web.forms import csrf_ok
from api.web.i18n import N_
from api.web.render import language_of, render
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, NotFound, ServiceError

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])

PURPOSES = (("un", N_("United Nations body")), ("court", N_("Court")), ("partner", N_("Partner organisation")),
            ("internal", N_("Internal")))
FORMATS = ("zip", "tar")
# What a withheld entry is about and why, in the page's language (the service's English sentence otherwise)
WHAT = {"victim": N_("Victims"), "item": N_("Items"), "link": N_("Links"), "victim name": N_("Victims' names"),
        "witness identity": N_("Witness identities"), "witness description": N_("Witness descriptions"),
        "provenance text": N_("Provenance notes"), "original file name": N_("Original file names"),
        "record state": N_("Record history")}
WHY = {
    "no_consent_un_bodies": N_("The family has not consented, or no longer consents, to sharing with United "
                                 "Nations bodies."),
    "no_consent_courts": N_("The family has not consented, or no longer consents, to sharing with courts."),
    "linked_to_withheld_victim": N_("Linked to a victim withheld for want of the family's consent."),
    "touches_withheld": N_("One end of the link is a withheld victim or item."),
    "name_withheld": N_("The family asked that the name be withheld: the victim goes without it."),
    "witness_identity": N_("A witness's real identity is never exported (aliases only)."),
    "witness_description": N_("Free text describing a witness may identify them."),
    "provenance_free_text": N_("Free-text provenance (who handed it over, intake notes) is not exported."),
    "original_name_of_withheld_person": N_("An item linked to a victim whose name is withheld goes without its "
                                           "original file name (it may spell the name)."),
}
MAX_CHOSEN = 10_000
ITEM_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass
class Choice:
    """What the form holds (kept as typed, so a refused form comes back filled in)."""

    incidents: list[str] = field(default_factory=list)
    items: str = ""
    purpose: str = ""
    to: str = ""
    key: str = ""
    format: str = "zip"

    @property
    def item_ids(self) -> list[str]:
        return [part for part in ITEM_SEPARATORS.split(self.items.strip()) if part]


def _options(request: Request) -> dict[str, Any]:
    """What the form offers the caller: the incidents it can see, the registered recipients."""
    from api.web.routes.records import choices, labeller
    from archive.exports.recipients import list_recipients
    from archive.services.incidents import list_incidents

    archive, role = who(request)
    term = labeller(request, choices(archive, role))
    incidents = [{**incident, "governorate_label": term("governorates", incident.get("governorate"))}
                 for incident in list_incidents(archive, role=role)]
    return {"incidents": incidents, "recipients": list_recipients(archive, role=role),
            "custodian": role is Role.CUSTODIAN, "purpose_labels": dict(PURPOSES)}


def _check(request: Request, choice: Choice, options: dict[str, Any], *, download: bool = False) -> dict[str, str]:
    """The messages of what the page can tell before asking the service, by field. The review checks a recipient
    only when one is given, and who may give an age key; the download needs a recipient and leaves the key's
    role to the export service, which refuses it itself."""
    from archive.age import Recipient

    _ = language_of(request).gettext
    errors: dict[str, str] = {}
    visible = {incident["ref"] for incident in options["incidents"]}
    unknown = [ref for ref in choice.incidents if ref not in visible]
    if unknown:
        errors["incidents"] = _("Unknown incident: %(refs)s") % {"refs": ", ".join(unknown[:5])}
    if len(choice.incidents) > MAX_CHOSEN or len(choice.item_ids) > MAX_CHOSEN:
        errors["items"] = _("Too many chosen at once.")
    if not choice.incidents and not choice.item_ids and "incidents" not in errors:
        errors["items"] = _("Choose incidents or items to export.")
    if choice.purpose not in {key for key, _label in PURPOSES}:
        errors["purpose"] = _("Choose the purpose of the export.")
    if choice.format not in FORMATS:
        errors["format"] = _("Choose zip or tar.")
    if choice.key:
        if not options["custodian"] and not download:
            errors["key"] = _("Only a custodian may export to an age key given here; choose a registered "
                              "recipient.")
        else:
            try:
                Recipient.parse(choice.key)
            except Exception:  # noqa: BLE001 - any malformed key: one clear message
                errors["key"] = _("This is not an age public key (it starts with age1).")
    if choice.to:
        found = next((r for r in options["recipients"] if r["name"] == choice.to), None)
        if found is None:
            errors["to"] = _("Unknown recipient.")
        elif choice.purpose and found["kind"] != choice.purpose:
            errors["to"] = _("This recipient takes bundles for the purpose %(kind)s only.") % {"kind": found["kind"]}
    if download and not choice.to and not choice.key and "key" not in errors:
        errors["to"] = (_("Choose who can open the bundle: a registered recipient or an age public key.")
                        if options["custodian"] else _("Choose who can open the bundle: a registered recipient."))
    return errors


def _field_of(exc: ServiceError, choice: Choice) -> str:
    """The field a service refusal is about, to show it there ("form" when none)."""
    message = str(exc)
    if isinstance(exc, Forbidden) and choice.key:
        return "key"
    if "recipient" in message or "--to" in message:
        return "key" if choice.key and not choice.to else "to"
    if "incident" in message:
        return "incidents"
    if "item" in message or "nothing to export" in message:
        return "items"
    if "purpose" in message:
        return "purpose"
    return "form"


def _request(choice: Choice) -> Any:
    from archive.exports.selection import ExportRequest

    return ExportRequest(purpose=choice.purpose, incidents=tuple(choice.incidents), items=tuple(choice.item_ids))


def _withheld(request: Request, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's withheld entries with their labels in the page's language (the reason's key kept)."""
    _ = language_of(request).gettext
    rows = []
    for entry in plan["withheld"]:
        what, reason = str(entry["what"]), str(entry["reason"])
        why = WHY.get(reason) if what != "record state" else None
        rows.append({**entry, "what_label": _(WHAT[what]) if what in WHAT else what,
                     "why_label": _(why) if why else None})
    return rows


def _page(request: Request, choice: Choice, options: dict[str, Any], *, errors: dict[str, str] | None = None,
          plan: dict[str, Any] | None = None) -> HTMLResponse:
    htmx = request.headers.get("hx-request") == "true"
    if plan is not None:
        plan = {**plan, "withheld": _withheld(request, plan)}
    status = 422 if errors and not htmx else 200
    return render(request, "export.html", status_code=status, fragment="exportarea" if htmx else None,
                  choice=choice, errors=errors or {}, plan=plan, purposes=PURPOSES, formats=FORMATS, **options)


def _choice(incidents: list[str], items: str, purpose: str, to: str, key: str, fmt: str) -> Choice:
    return Choice(incidents=[ref.strip() for ref in incidents if ref.strip()], items=items, purpose=purpose.strip(),
                  to=to.strip(), key=key.strip(), format=fmt.strip() or "zip")


Incidents = Annotated[list[str], Form()]
Text = Annotated[str, Form(max_length=200_000)]
Short = Annotated[str, Form(max_length=256)]


@router.get("/export", response_class=HTMLResponse)
def export_page(request: Request) -> HTMLResponse:
    return _page(request, Choice(), _options(request))


@router.post("/export/plan", response_class=HTMLResponse)
def export_plan(request: Request, incidents: Incidents = [], items: Text = "",  # noqa: B006 - FastAPI copies it
                purpose: Short = "", to: Short = "", key: Short = "", format: Short = "zip") -> HTMLResponse:
    """What the bundle would carry and withhold, and why: the service's plan, in the page's language."""
    from archive.exports.service import plan_export

    choice = _choice(incidents, items, purpose, to, key, format)
    options = _options(request)
    errors = _check(request, choice, options)
    if errors:
        return _page(request, choice, options, errors=errors)
    archive, role = who(request)
    try:
        plan = plan_export(archive, _request(choice), role=role)
    except (Invalid, NotFound, Forbidden) as exc:
        return _page(request, choice, options, errors={_field_of(exc, choice): str(exc)})
    return _page(request, choice, options, plan=plan)


@router.post("/export/bundle")
def export_bundle(request: Request, incidents: Incidents = [], items: Text = "",  # noqa: B006 - FastAPI copies it
                  purpose: Short = "", to: Short = "", key: Short = "", format: Short = "zip") -> Response:
    """The bundle, streamed as a download (two custody events: export started, transfer)."""
    from api.http.routes.exports import ExportBody, stream_bundle

    choice = _choice(incidents, items, purpose, to, key, format)
    options = _options(request)
    errors = _check(request, choice, options, download=True)
    if errors:
        return _page(request, choice, options, errors=errors)
    archive, role = who(request)
    body = ExportBody.model_validate({"purpose": choice.purpose, "incidents": choice.incidents,
                                      "items": choice.item_ids, "to": choice.to or None,
                                      "recipients": [choice.key] if choice.key else [], "format": choice.format})
    try:
        return stream_bundle(archive, role, _request(choice), body)
    except (Invalid, NotFound, Forbidden) as exc:
        return _page(request, choice, options, errors={_field_of(exc, choice): str(exc)})
