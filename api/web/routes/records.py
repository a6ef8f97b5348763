"""The records pages: incidents, victims and sources, their forms, their links, and a witness's identity.

Each page calls the same service functions as `api/http/routes/records.py`,
with the caller's role, so what a role sees is the services' rule, never this
module's: a restricted case's incidents and victims are not found (404) and
never listed, a withheld name reads `[withheld]` to an investigator, a
witness's identity stays sealed. Forms re-render with the service's message
beside the field it names (`Invalid("field: why")`) and status 422, keeping what
was typed; success is a 303 to the record's page (by id: a ref may hold a `/`).

A witness's real identity is shown to a custodian only, after one more
confirmation (a ticked box on a form of its own), and only once the viewing is
a custody event (`access`, naming the source by id): `show_source` opens the
identity without recording anything, so this module records it, through the
archive's log, before the page holds the identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.web.forms import csrf_ok
from api.web.i18n import N_
from api.web.render import language_of, render
from archive.records.vocab import (
    AGE_GROUPS,
    CERTAINTIES,
    CONSENT_ANSWERS,
    CONSENT_SCOPES,
    FACILITY_DAMAGE,
    PRECISIONS,
    SEXES,
    SOURCE_RELIABILITY,
)
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, Locked, ServiceError

if TYPE_CHECKING:
    from starlette.datastructures import FormData

    from archive.context import Archive

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])

PAGE = 50  # entries per list page

# Labels of the interchange format's closed sets (the vocabularies' own labels come from the catalog).
LABELS: dict[str, dict[str, str]] = {
    "precisions": {"day": N_("Day"), "hour": N_("Hour"), "minute": N_("Minute"), "about": N_("About (approximate)")},
    "damage": {"slight": N_("Slight"), "moderate": N_("Moderate"), "heavy": N_("Heavy"),
               "out_of_service": N_("Out of service")},
    "sexes": {"male": N_("Male"), "female": N_("Female"), "unknown": N_("Unknown")},
    "age_groups": {"child": N_("Child"), "adult": N_("Adult"), "unknown": N_("Unknown")},
    "certainties": {"confirmed": N_("Confirmed"), "probable": N_("Probable"), "possible": N_("Possible")},
    "scopes": {"un_bodies": N_("UN bodies"), "courts": N_("Courts"), "publication": N_("Publication")},
    "answers": {"yes": N_("Yes"), "no": N_("No"), "not_asked": N_("Not asked"), "withdrawn": N_("Withdrawn")},
    "source_kinds": {"survivor": N_("Survivor"), "eyewitness": N_("Eyewitness"), "filmer": N_("Person who filmed"),
                     "open_source": N_("Open source"), "medical": N_("Medical staff"),
                     "official": N_("Official statement")},
    "attribution_kinds": {"single": N_("Single party"), "joint": N_("Joint"), "other": N_("Other parties")},
    "link_types": {"item": N_("Item"), "victim": N_("Victim"), "source": N_("Source"), "incident": N_("Incident")},
    "link_kinds": {"item_incident": N_("Item shows the incident"), "item_victim": N_("Item shows the victim"),
                   "victim_incident": N_("Victim of the incident"), "source_item": N_("Source of the item"),
                   "source_incident": N_("Source on the incident")},
    "changes": {"create": N_("Created"), "edit": N_("Edited"), "attribute": N_("Attributed"),
                "identify": N_("Identified"), "merge": N_("Merged"), "consent": N_("Consent recorded"),
                "withdraw": N_("Consent withdrawn"), "link": N_("Linked"), "unlink": N_("Unlinked")},
}
CONSTANTS = {"precisions": PRECISIONS, "damage": FACILITY_DAMAGE, "sexes": SEXES, "age_groups": AGE_GROUPS,
             "certainties": CERTAINTIES, "scopes": CONSENT_SCOPES, "answers": CONSENT_ANSWERS,
             "source_kinds": tuple(SOURCE_RELIABILITY)}

INCIDENT_FIELDS = ("ref", "type", "started_at", "started_precision", "governorate", "district", "place",
                   "neighbourhood", "latitude", "longitude", "controlled_by", "weapon", "facility_damage", "narrative")
VICTIM_TEXT = ("ref", "incident_ref", "name", "sex", "age", "age_group", "civilian", "governorate_of_death",
               "governorate_of_origin", "date_of_death", "date_documented")
VICTIM_FLAGS = ("name_withheld", "died_under_torture")
CONSENT_COLUMNS = ("family_consent", "consent_date", "consent_recorded_by")
SOURCE_FIELDS = ("ref", "kind", "alias", "url", "channel", "posted_at", "description")
LINK_FIELDS = ("link_type", "target", "certainty", "note", "link_reason")


# --- who asks, what forms offer ----------------------------------------------------------------------------------

def who(request: Request) -> tuple[Archive, Role]:
    """The archive acting as the signed-in caller (its user id in every custody event), and the caller's role."""
    from api.http.auth import archive_for, current_caller

    return archive_for(request), Role(current_caller(request).role)


def choices(archive: Archive, role: Role) -> dict[str, list[tuple[str, str]]]:
    """What the forms offer: every vocabulary (key, label) from the catalog, and the format's closed sets."""
    from archive.services.records_io import show_vocab

    offered = {name: [(str(t["key"]), str(t["label"]))
                      for t in sorted(terms, key=lambda t: t.get("group") == "other")]  # parties: main ones first
               for name, terms in show_vocab(archive, role=role).items()}
    for name, keys in CONSTANTS.items():
        offered[name] = [(key, LABELS[name][key]) for key in keys]
    return offered


def labeller(request: Request, offered: Mapping[str, list[tuple[str, str]]]) -> Callable[[str, Any], str]:
    """`term(vocabulary, key)`: a key's label in the request's language (the key itself when unknown)."""
    gettext = language_of(request).gettext
    tables = {name: dict(pairs) for name, pairs in offered.items()}
    tables.update({name: labels for name, labels in LABELS.items() if name not in tables})

    def term(vocabulary: str, key: Any) -> str:
        if key in (None, ""):
            return ""
        label = tables.get(vocabulary, {}).get(str(key))
        return gettext(label) if label else str(key)

    return term


def page_common(request: Request, archive: Archive, role: Role) -> dict[str, Any]:
    offered = choices(archive, role)
    return {"choices": offered, "term": labeller(request, offered), "custodian": role == Role.CUSTODIAN}


# --- forms: values, messages beside fields -----------------------------------------------------------------------

def problem(exc: ServiceError, fields: Collection[str], aliases: Mapping[str, str] | None = None
            ) -> tuple[dict[str, str], str | None]:
    """The service's message placed beside the field it names (`"field: why"`), else shown above the form."""
    message = str(exc)
    head, sep, rest = message.partition(":")
    if sep:
        for part in head.replace(" and ", ",").split(","):
            name = (aliases or {}).get(part.strip(), part.strip())
            if name in fields:
                why = rest.strip()
                if why == "required" or why.startswith("a party key is required"):
                    why = REQUIRED.get(name, REQUIRED_ELSE)
                return {name: why or message}, None
    return {}, message


# What a form says of a field left empty, or of a value the page itself can tell is wrong: one sentence each,
# translated where shown, with no value put in (so the catalog always matches).
REQUIRED: dict[str, str] = {
    "ref": N_("Give the record's ref: the team's own reference for it."),
    "type": N_("Choose the type of incident."),
    "started_at": N_("Give the date the incident started, as YYYY-MM-DD."),
    "governorate": N_("Choose the governorate."),
    "attribution": N_("Choose at least one party responsible."),
    "parties": N_("Choose at least one party responsible."),
    "incident_ref": N_("Give the ref of the incident the victim belongs to."),
    "sex": N_("Choose the victim's sex (Unknown if it is not known)."),
    "civilian": N_("Say whether the victim was a civilian."),
    "date_documented": N_("Give the date the victim was documented, as YYYY-MM-DD."),
    "kind": N_("Choose the kind of source."),
}
REQUIRED_ELSE = N_("This field is required: please fill it in.")
BAD_DAY = N_("This is not a real date: write it as YYYY-MM-DD, for example 2024-03-15.")
BAD_STARTED = N_("This is not a real date: write YYYY-MM-DD, or YYYY-MM-DDTHH:MM with a time of day.")
BAD_YEAR = N_("The year must be between 1900 and 2100: check for a typing mistake.")
LATITUDE_NUMBER = N_("The latitude must be a decimal number of degrees, like 35.93.")
LATITUDE_RANGE = N_("The latitude must be between -90 and 90 degrees.")
LONGITUDE_NUMBER = N_("The longitude must be a decimal number of degrees, like 36.63.")
LONGITUDE_RANGE = N_("The longitude must be between -180 and 180 degrees.")
BOTH_COORDINATES = N_("Give both the latitude and the longitude, or neither.")
AGE_NUMBER = N_("The age must be a whole number of years, like 34.")
AGE_RANGE = N_("The age must be 130 years or less.")
AGE_GROUP = N_("The age group does not match the age: a child is under 18.")
DEATH_AFTER = N_("The date of death cannot be after the date documented.")
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def _day_problem(value: str, *, started: bool = False) -> str | None:
    """Why a date (an incident's start: with an optional time of day) cannot be saved, or None."""
    from archive.records.common import check_day, check_started

    try:
        text = check_started(value)[0] if started else check_day(value, "date")
    except Invalid:
        return BAD_STARTED if started else BAD_DAY
    return None if 1900 <= int(text[:4]) <= 2100 else BAD_YEAR


def _coordinate_problem(value: str, bound: int, number: str, outside: str) -> str | None:
    if not _DECIMAL_TEXT.match(value):
        return number
    return None if -bound <= float(value) <= bound else outside


def required_problems(values: Mapping[str, Any], names: Collection[str]) -> dict[str, str]:
    """Each required field left empty, with its sentence."""
    return {name: REQUIRED.get(name, REQUIRED_ELSE) for name in names if not values.get(name)}


def incident_problems(values: Mapping[str, Any], *, new: bool) -> dict[str, str]:
    """Every problem of an incident form the page can see itself, all at once, in the form's order (the service
    still checks everything, and says what only it can tell: a ref taken, a key unknown)."""
    errors = required_problems(values, ("ref", "type", "started_at", "governorate", *(("attribution",) if new else ())))
    if values.get("started_at") and (why := _day_problem(values["started_at"], started=True)):
        errors["started_at"] = why
    latitude, longitude = values.get("latitude") or "", values.get("longitude") or ""
    if latitude and (why := _coordinate_problem(latitude, 90, LATITUDE_NUMBER, LATITUDE_RANGE)):
        errors["latitude"] = why
    if longitude and (why := _coordinate_problem(longitude, 180, LONGITUDE_NUMBER, LONGITUDE_RANGE)):
        errors["longitude"] = why
    if bool(latitude) != bool(longitude):
        errors.setdefault("longitude" if latitude else "latitude", BOTH_COORDINATES)
    order = (*INCIDENT_FIELDS[:INCIDENT_FIELDS.index("weapon")], "attribution", *INCIDENT_FIELDS)
    return {name: errors[name] for name in dict.fromkeys(order) if name in errors}


def victim_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Every problem of a victim form the page can see itself, all at once, in the form's order."""
    from archive.records.store import is_child

    errors = required_problems(values, ("ref", "incident_ref", "sex", "civilian", "date_documented"))
    age = values.get("age") or ""
    if age:
        if not age.isdecimal() or not age.isascii():
            errors["age"] = AGE_NUMBER
        elif int(age) > 130:
            errors["age"] = AGE_RANGE
        elif values.get("age_group") in ("child", "adult") and (values["age_group"] == "child") != is_child(
                int(age), None):
            errors["age_group"] = AGE_GROUP
    for name in ("date_of_death", "date_documented", "consent_date"):
        if values.get(name) and (why := _day_problem(values[name])):
            errors[name] = why
    died, documented = values.get("date_of_death") or "", values.get("date_documented") or ""
    if died and documented and not {"date_of_death", "date_documented"} & errors.keys() and died > documented:
        errors["date_of_death"] = DEATH_AFTER
    return {name: errors[name] for name in (*VICTIM_TEXT, *CONSENT_COLUMNS) if name in errors}


def source_problems(values: Mapping[str, Any]) -> dict[str, str]:
    errors = required_problems(values, ("ref", "kind"))
    return {name: errors[name] for name in SOURCE_FIELDS if name in errors}


def text_of(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def list_of(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def paged(request: Request, rows: list[dict[str, Any]], after: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a list after the entry `after` (an id), and the query of the next page (None: the last)."""
    start = 0
    if after:
        start = next((i + 1 for i, row in enumerate(rows) if row["id"] == after), -1)
        if start < 0:
            raise Invalid("after: not an entry of this list (start again from the first page)")
    chunk = rows[start : start + PAGE]
    if start + PAGE >= len(rows) or not chunk:
        return chunk, None
    query = {k: v for k, v in request.query_params.items() if k != "after" and v != ""}
    return chunk, urlencode({**query, "after": chunk[-1]["id"]})


def filters(request: Request, names: Collection[str]) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in names}


def linked(archive: Archive, role: Role, record_id: str, type_: str) -> list[dict[str, Any]]:
    """A record's active links, each with the far end (`other`) from the record's side."""
    from archive.services.links import links_of

    out = []
    for link in links_of(archive, record_id, role=role, type_=type_)["links"]:
        other = link["b"] if link["a"]["id"] == record_id else link["a"]
        out.append({**link, "other": other})
    return out


# --- incidents ---------------------------------------------------------------------------------------------------

INCIDENT_FILTERS = ("type", "governorate", "party", "from", "to", "massacres")


@router.get("/incidents")
def incidents_page(request: Request, after: str | None = None) -> Response:
    from archive.services.incidents import list_incidents

    archive, role = who(request)
    wanted = filters(request, INCIDENT_FILTERS)
    errors: dict[str, str] = {}
    problem_text: str | None = None
    rows: list[dict[str, Any]] = []
    next_query = None
    try:
        rows = list_incidents(archive, role=role, type=wanted["type"] or None,
                              governorate=wanted["governorate"] or None, party=wanted["party"] or None,
                              date_from=wanted["from"] or None, date_to=wanted["to"] or None,
                              massacres=bool(wanted["massacres"]))
        rows, next_query = paged(request, rows, after)
    except Invalid as exc:
        errors, problem_text = problem(exc, INCIDENT_FILTERS)
        rows = []
    return render(request, "incidents.html", status_code=422 if (errors or problem_text) else 200,
                  incidents=rows, filters=wanted, errors=errors, problem=problem_text, next_query=next_query,
                  **page_common(request, archive, role))


def incident_form(request: Request, archive: Archive, role: Role, *, incident: dict[str, Any] | None,
                  values: dict[str, Any], errors: dict[str, str] | None = None, problem_text: str | None = None,
                  status: int = 200) -> Response:
    return render(request, "incident_form.html", status_code=status, incident=incident, values=values,
                  errors=errors or {}, problem=problem_text, **page_common(request, archive, role))


@router.get("/incidents/new")
def new_incident_page(request: Request) -> Response:
    archive, role = who(request)
    return incident_form(request, archive, role, incident=None, values={"attribution": []})


@router.post("/incidents")
async def create_incident(request: Request) -> Response:
    form = await request.form()
    return await run_in_threadpool(_create_incident, request, form)


def _create_incident(request: Request, form: FormData) -> Response:
    from archive.services.incidents import add_incident

    archive, role = who(request)
    values: dict[str, Any] = {name: text_of(form, name) for name in INCIDENT_FIELDS}
    values["attribution"] = list_of(form, "attribution")
    values["reason"] = text_of(form, "reason")
    fields = {name: values[name] for name in INCIDENT_FIELDS if values[name]}
    fields["attribution"] = "+".join(values["attribution"])
    found = incident_problems(values, new=True)
    if found:
        return incident_form(request, archive, role, incident=None, values=values, errors=found, status=422)
    try:
        made = add_incident(archive, fields, role=role, reason=values["reason"] or None)
    except Invalid as exc:
        errors, text = problem(exc, (*INCIDENT_FIELDS, "attribution", "reason"))
        return incident_form(request, archive, role, incident=None, values=values, errors=errors,
                             problem_text=text, status=422)
    return see(f"/incidents/{made['id']}")


@router.get("/incidents/{ref}")
def incident_page(request: Request, ref: str) -> Response:
    archive, role = who(request)
    return incident_view(request, archive, role, ref)


def incident_view(request: Request, archive: Archive, role: Role, ref: str, *, status: int = 200,
                  attribution: dict[str, Any] | None = None, link: dict[str, Any] | None = None) -> Response:
    """The incident page; `attribution`/`link`: a form sent back with its values and errors."""
    from archive.services.incidents import show_incident
    from archive.services.victims import list_victims

    incident = show_incident(archive, ref, role=role, history=True)
    links = linked(archive, role, incident["id"], "incident")
    victims = list_victims(archive, role=role, incident=incident["id"], names=True)
    listed = {v["id"] for v in victims}  # its own victims; a victim linked besides is shown apart
    return render(request, "incident.html", status_code=status, incident=incident,
                  items=[lk for lk in links if lk["other"]["type"] == "item"],
                  victim_links=[lk for lk in links
                                if lk["other"]["type"] == "victim" and lk["other"]["id"] not in listed],
                  victims=victims,
                  sources=[lk for lk in links if lk["other"]["type"] == "source"],
                  attribution=attribution or {"values": {"parties": []}, "errors": {}},
                  link=link or {"values": {}, "errors": {}}, **page_common(request, archive, role))


@router.get("/incidents/{ref}/edit")
def edit_incident_page(request: Request, ref: str) -> Response:
    from archive.services.incidents import show_incident

    archive, role = who(request)
    incident = show_incident(archive, ref, role=role)
    values = {name: "" if incident.get(name) is None else str(incident[name]) for name in INCIDENT_FIELDS}
    return incident_form(request, archive, role, incident=incident, values=values)


@router.post("/incidents/{ref}")
async def update_incident(request: Request, ref: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_update_incident, request, ref, form)


def _update_incident(request: Request, ref: str, form: FormData) -> Response:
    from archive.services.incidents import edit_incident, show_incident

    archive, role = who(request)
    incident = show_incident(archive, ref, role=role)  # a hidden or unknown incident: 404 before anything
    values: dict[str, Any] = {name: text_of(form, name) for name in INCIDENT_FIELDS}
    values["reason"] = text_of(form, "reason")
    errors = incident_problems(values, new=False)
    text = None
    if not values["reason"]:
        errors["reason"] = language_of(request).gettext("Say why you change this record: it is kept in its history.")
    if not errors:
        try:
            changes = {name: values[name] for name in INCIDENT_FIELDS}
            edit_incident(archive, incident["id"], changes, role=role, reason=values["reason"])
        except Invalid as exc:
            errors, text = problem(exc, (*INCIDENT_FIELDS, "reason"))
    if errors or text:
        return incident_form(request, archive, role, incident=incident, values=values, errors=errors,
                             problem_text=text, status=422)
    return see(f"/incidents/{incident['id']}")


@router.post("/incidents/{ref}/attributions")
async def attribute_incident(request: Request, ref: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_attribute, request, ref, form)


def _attribute(request: Request, ref: str, form: FormData) -> Response:
    from archive.services.incidents import attribute, show_incident

    archive, role = who(request)
    incident = show_incident(archive, ref, role=role)
    parties, reason, evidence_text = list_of(form, "parties"), text_of(form, "reason"), text_of(form, "evidence")
    values: dict[str, Any] = {"parties": parties, "reason": reason, "evidence": evidence_text}
    evidence = [line.strip() for line in evidence_text.replace(",", "\n").splitlines() if line.strip()]
    try:
        attribute(archive, incident["id"], parties, role=role, reason=reason, evidence=evidence)
    except Invalid as exc:
        errors, text = problem(exc, ("parties", "reason", "evidence"), {"attribution": "parties"})
        return incident_view(request, archive, role, incident["id"], status=422,
                             attribution={"values": values, "errors": errors, "problem": text})
    return see(f"/incidents/{incident['id']}#attributions")


@router.post("/incidents/{ref}/links")
async def link_to_incident(request: Request, ref: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_link, request, ref, form)


def _link(request: Request, ref: str, form: FormData) -> Response:
    from archive.services.errors import Ambiguous, NotFound
    from archive.services.incidents import show_incident
    from archive.services.links import link

    archive, role = who(request)
    incident = show_incident(archive, ref, role=role)
    values = {name: text_of(form, name) for name in LINK_FIELDS}
    errors: dict[str, str] = {}
    text = None
    if values["link_type"] not in ("item", "victim", "source"):
        errors["link_type"] = language_of(request).gettext("Choose what to link: an item, a victim or a source.")
    elif not values["target"]:
        errors["target"] = language_of(request).gettext("Give the item's id, or the victim's or source's ref.")
    else:
        try:
            link(archive, values["target"], incident["id"], role=role, a_type=values["link_type"], b_type="incident",
                 certainty=values["certainty"] or None, note=values["note"] or None,
                 reason=values["link_reason"] or None)
        except (NotFound, Ambiguous) as exc:  # the other end (a hidden thing reads the same as nothing)
            errors["target"] = str(exc)
        except Invalid as exc:
            errors, text = problem(exc, ("certainty", "note"), {"reason": "link_reason"})
            if not errors and text is not None:
                errors, text = {"target": text}, None
    if errors or text:
        return incident_view(request, archive, role, incident["id"], status=422,
                             link={"values": values, "errors": errors, "problem": text})
    return see(f"/incidents/{incident['id']}#linked")


# --- victims -----------------------------------------------------------------------------------------------------

VICTIM_FILTERS = ("incident", "sex", "child", "civilian", "governorate", "from", "to")


def tri(value: str) -> bool | None:
    return {"true": True, "false": False}.get(value)


@router.get("/victims")
def victims_page(request: Request, after: str | None = None) -> Response:
    from archive.services.victims import list_victims

    archive, role = who(request)
    wanted = filters(request, VICTIM_FILTERS)
    errors: dict[str, str] = {}
    text: str | None = None
    rows: list[dict[str, Any]] = []
    next_query = None
    try:
        rows = list_victims(archive, role=role, incident=wanted["incident"] or None, sex=wanted["sex"] or None,
                            child=tri(wanted["child"]), civilian=tri(wanted["civilian"]),
                            governorate=wanted["governorate"] or None, date_from=wanted["from"] or None,
                            date_to=wanted["to"] or None, names=True)
        rows, next_query = paged(request, rows, after)
    except Invalid as exc:
        errors, text = problem(exc, VICTIM_FILTERS)
    except ServiceError as exc:  # an incident filter naming nothing (or a hidden one): the same message
        from archive.services.errors import NotFound

        if not isinstance(exc, NotFound):
            raise
        errors = {"incident": str(exc)}
    return render(request, "victims.html", status_code=422 if (errors or text) else 200, victims=rows,
                  filters=wanted, errors=errors, problem=text, next_query=next_query,
                  **page_common(request, archive, role))


def victim_form(request: Request, archive: Archive, role: Role, *, victim: dict[str, Any] | None,
                values: dict[str, Any], errors: dict[str, str] | None = None, problem_text: str | None = None,
                status: int = 200) -> Response:
    from archive.services.incidents import list_incidents

    refs = [i["ref"] for i in list_incidents(archive, role=role)]
    return render(request, "victim_form.html", status_code=status, victim=victim, values=values,
                  errors=errors or {}, problem=problem_text, incident_refs=refs,
                  name_editable=name_editable(victim, role), **page_common(request, archive, role))


def name_editable(victim: dict[str, Any] | None, role: Role) -> bool:
    """Whether the form offers the name: not to a non-custodian when the name is withheld (they never see it,
    and any name they sent would be refused)."""
    from archive.services.victims import WITHHELD

    if victim is None or role == Role.CUSTODIAN:
        return True
    return not (victim.get("name_withheld") or victim.get("name") == WITHHELD)  # withheld by a merged report too


def victim_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: text_of(form, name) for name in (*VICTIM_TEXT, *CONSENT_COLUMNS, "reason")}
    for flag in VICTIM_FLAGS:
        values[flag] = bool(text_of(form, flag))
    values["professions"] = list_of(form, "professions")
    return values


VICTIM_ERRORS = (*VICTIM_TEXT, *VICTIM_FLAGS, *CONSENT_COLUMNS, "professions", "reason")


@router.get("/victims/new")
def new_victim_page(request: Request, incident: str | None = None) -> Response:
    archive, role = who(request)
    return victim_form(request, archive, role, victim=None,
                       values={"professions": [], "incident_ref": incident or ""})


@router.post("/victims")
async def create_victim(request: Request) -> Response:
    form = await request.form()
    return await run_in_threadpool(_create_victim, request, form)


def _create_victim(request: Request, form: FormData) -> Response:
    from archive.services.victims import add_victim

    archive, role = who(request)
    values = victim_values(form)
    fields: dict[str, Any] = {name: values[name] for name in (*VICTIM_TEXT, *CONSENT_COLUMNS) if values[name]}
    fields.update({flag: values[flag] for flag in VICTIM_FLAGS})
    fields["professions"] = values["professions"]
    found = victim_problems(values)
    if found:
        return victim_form(request, archive, role, victim=None, values=values, errors=found, status=422)
    try:
        made = add_victim(archive, fields, role=role, reason=values["reason"] or None)
    except (Invalid, Forbidden) as exc:
        errors, text = problem(exc, VICTIM_ERRORS)
        return victim_form(request, archive, role, victim=None, values=values, errors=errors, problem_text=text,
                           status=422)
    return see(f"/victims/{made['id']}")


@router.get("/victims/{ref}")
def victim_page(request: Request, ref: str) -> Response:
    from archive.services.incidents import show_incident
    from archive.services.victims import show_victim

    archive, role = who(request)
    victim = show_victim(archive, ref, role=role, history=True)
    incident = show_incident(archive, victim["incident_id"], role=role)
    links = linked(archive, role, victim["id"], "victim")
    return render(request, "victim.html", victim=victim, incident=incident,
                  incidents=[lk for lk in links if lk["other"]["type"] == "incident"],
                  items=[lk for lk in links if lk["other"]["type"] == "item"],
                  scopes=CONSENT_SCOPES, **page_common(request, archive, role))


@router.get("/victims/{ref}/edit")
def edit_victim_page(request: Request, ref: str) -> Response:
    from archive.services.victims import show_victim

    archive, role = who(request)
    victim = show_victim(archive, ref, role=role)
    values: dict[str, Any] = {name: "" if victim.get(name) is None else str(victim[name]) for name in VICTIM_TEXT}
    values["civilian"] = "true" if victim["civilian"] else "false"
    values["name"] = victim.get("name") or "" if name_editable(victim, role) else ""
    values.update({flag: bool(victim.get(flag)) for flag in VICTIM_FLAGS})
    values["professions"] = list(victim.get("professions") or [])
    return victim_form(request, archive, role, victim=victim, values=values)


@router.post("/victims/{ref}")
async def update_victim(request: Request, ref: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_update_victim, request, ref, form)


def _update_victim(request: Request, ref: str, form: FormData) -> Response:
    from archive.services.victims import edit_victim, show_victim

    archive, role = who(request)
    victim = show_victim(archive, ref, role=role)
    values = victim_values(form)
    changes: dict[str, Any] = {name: values[name] for name in VICTIM_TEXT}
    changes.update({flag: values[flag] for flag in VICTIM_FLAGS})
    changes["professions"] = values["professions"]
    if not name_editable(victim, role):
        changes.pop("name")
        changes.pop("name_withheld")  # it stays withheld: only a custodian lifts it
    elif victim.get("anonymous") and not changes["name"]:
        changes.pop("name")  # an anonymous victim stays so (it gets a name by identification)
    errors = victim_problems(values)
    text = None
    if not values["reason"]:
        errors["reason"] = language_of(request).gettext("Say why you change this record: it is kept in its history.")
    if not errors:
        try:
            edit_victim(archive, victim["id"], changes, role=role, reason=values["reason"])
        except (Invalid, Forbidden) as exc:
            errors, text = problem(exc, VICTIM_ERRORS)
    if errors or text:
        return victim_form(request, archive, role, victim=victim, values=values, errors=errors, problem_text=text,
                           status=422)
    return see(f"/victims/{victim['id']}")


# --- sources -----------------------------------------------------------------------------------------------------

@router.get("/sources")
def sources_page(request: Request, after: str | None = None) -> Response:
    from archive.services.sources import list_sources

    archive, role = who(request)
    wanted = filters(request, ("kind",))
    errors: dict[str, str] = {}
    text: str | None = None
    rows: list[dict[str, Any]] = []
    next_query = None
    try:
        rows, next_query = paged(request, list_sources(archive, role=role, kind=wanted["kind"] or None), after)
    except Invalid as exc:
        errors, text = problem(exc, ("kind",))
    return render(request, "sources.html", status_code=422 if (errors or text) else 200, sources=rows,
                  filters=wanted, errors=errors, problem=text, next_query=next_query,
                  **page_common(request, archive, role))


def source_form(request: Request, archive: Archive, role: Role, *, source: dict[str, Any] | None,
                values: dict[str, Any], errors: dict[str, str] | None = None, problem_text: str | None = None,
                status: int = 200) -> Response:
    return render(request, "source_form.html", status_code=status, source=source, values=values,
                  errors=errors or {}, problem=problem_text, **page_common(request, archive, role))


SOURCE_ERRORS = (*SOURCE_FIELDS, "identity", "forget_identity", "reason")


def source_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: text_of(form, name) for name in (*SOURCE_FIELDS, "reason")}
    raw = form.get("identity")
    values["identity"] = raw if isinstance(raw, str) else ""  # kept as typed, never trimmed nor shown back once saved
    values["forget_identity"] = bool(text_of(form, "forget_identity"))
    return values


def identity_of(values: dict[str, Any]) -> Any:
    from archive.records.identity import parse_identity_text

    return parse_identity_text(values["identity"]) if values["identity"].strip() else None


@router.get("/sources/new")
def new_source_page(request: Request) -> Response:
    archive, role = who(request)
    return source_form(request, archive, role, source=None, values={})


@router.post("/sources")
async def create_source(request: Request) -> Response:
    form = await request.form()
    return await run_in_threadpool(_create_source, request, form)


def _create_source(request: Request, form: FormData) -> Response:
    from archive.services.sources import add_source

    archive, role = who(request)
    values = source_values(form)
    fields = {name: values[name] for name in SOURCE_FIELDS if values[name]}
    found = source_problems(values)
    if found:
        return source_form(request, archive, role, source=None, values=values, errors=found, status=422)
    try:
        made = add_source(archive, fields, role=role, identity=identity_of(values), reason=values["reason"] or None)
    except Invalid as exc:
        errors, text = problem(exc, SOURCE_ERRORS)
        return source_form(request, archive, role, source=None, values=values, errors=errors, problem_text=text,
                           status=422)
    return see(f"/sources/{made['id']}")


@router.get("/sources/{ref}")
def source_page(request: Request, ref: str) -> Response:
    archive, role = who(request)
    return source_view(request, archive, role, ref)


def source_view(request: Request, archive: Archive, role: Role, ref: str, *, status: int = 200,
                identity: Any = None, reveal_error: str | None = None) -> Response:
    from archive.services.sources import show_source

    source = show_source(archive, ref, role=role, history=True)
    links = linked(archive, role, source["id"], "source")
    return render(request, "source.html", status_code=status, source=source,
                  items=[lk for lk in links if lk["other"]["type"] == "item"],
                  incidents=[lk for lk in links if lk["other"]["type"] == "incident"],
                  identity=identity, identity_is_text=isinstance(identity, str), reveal_error=reveal_error,
                  **page_common(request, archive, role))


@router.get("/sources/{ref}/edit")
def edit_source_page(request: Request, ref: str) -> Response:
    from archive.services.sources import show_source

    archive, role = who(request)
    source = show_source(archive, ref, role=role)
    values = {name: "" if source.get(name) is None else str(source[name]) for name in SOURCE_FIELDS}
    return source_form(request, archive, role, source=source, values=values)


@router.post("/sources/{ref}")
async def update_source(request: Request, ref: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_update_source, request, ref, form)


def _update_source(request: Request, ref: str, form: FormData) -> Response:
    from archive.services.sources import edit_source, show_source

    archive, role = who(request)
    source = show_source(archive, ref, role=role)
    values = source_values(form)
    errors = source_problems(values)
    text = None
    if not values["reason"]:
        errors["reason"] = language_of(request).gettext("Say why you change this record: it is kept in its history.")
    if not errors:
        try:
            edit_source(archive, source["id"], {name: values[name] for name in SOURCE_FIELDS}, role=role,
                        identity=identity_of(values), forget_identity=values["forget_identity"],
                        reason=values["reason"])
        except Invalid as exc:
            errors, text = problem(exc, SOURCE_ERRORS)
    if errors or text:
        return source_form(request, archive, role, source=source, values=values, errors=errors, problem_text=text,
                           status=422)
    return see(f"/sources/{source['id']}")


@router.post("/sources/{ref}/identity")
async def reveal_identity(request: Request, ref: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_reveal_identity, request, ref, bool(text_of(form, "confirm")))


def _reveal_identity(request: Request, ref: str, confirmed: bool) -> Response:
    """A witness's identity for a custodian who confirmed, once its viewing is in the custody log."""
    from archive.services.sources import show_source

    archive, role = who(request)
    if role != Role.CUSTODIAN:  # the matrix refuses it first; the services would too
        raise Forbidden("a witness's real identity is for custodians only")
    gettext = language_of(request).gettext
    if not confirmed:
        return source_view(request, archive, role, ref, status=422, reveal_error=gettext(
            "Tick the box to confirm that you need to see this witness's real identity."))
    try:
        shown = show_source(archive, ref, role=role, reveal_identity=True)
    except (Locked, ServiceError) as exc:
        from archive.services.errors import NotFound

        if isinstance(exc, (NotFound, Forbidden)):
            raise
        return source_view(request, archive, role, ref, status=503, reveal_error=str(exc))
    if shown.get("identity") is None:
        return source_view(request, archive, role, ref,
                           reveal_error=gettext("No real identity is held for this source."))
    return source_view(request, archive, role, shown["id"], identity=shown["identity"])
