"""Routes: the documentation model (incidents, victims, sources, links, candidates, search, stats, import).

Thin adapters: each route parses its request (pydantic models named as the
interchange columns, so a bad body is a clear 422 before any service runs),
calls one `archive.services` function with the caller's role and an Archive
acting as the caller, and returns what it returns. Who may call a route is
`api.http.matrix`; what a role sees of a record (aliases, never a witness's
identity; `[withheld]` for a name a family asked to withhold; restricted cases)
is the services' own rule, applied because every call passes `role=`.

Lists page with `?limit=&after=`: `after` is the `id` of the last entry of the
previous page, and the answer's `next` is the one to send for the following
page (None at the end). The services order their lists stably (by date, then
ref), so a page boundary never skips nor repeats an entry that did not change.

`POST /v1/import` takes the interchange files as a multipart form (`incidents`,
`victims`). They hold names and places, so they never rest in clear: the body is
parsed as it arrives (never through the framework's form parser, whose spool
rolls over to a plaintext temporary file) and each file part is encrypted into
an anonymous temporary file under a random key held only in this request's
memory, then read back, decrypted a segment at a time, by the importer.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from archive.roles import Role
from archive.services.errors import Invalid

if TYPE_CHECKING:
    from archive.context import Archive

JSON_BODY_LIMIT = 1 << 20  # a JSON body: a record's longest field (a narrative) is 20,000 characters
router = APIRouter(max_body_size=JSON_BODY_LIMIT)  # past it, 413 before the body is parsed

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_IMPORT_BYTES = 2 << 30  # one request's files together: 100,000 victims are ~30 MB


def too_large(limit: int) -> HTTPException:
    """A request body over the route's limit: 413, saying the limit."""
    return HTTPException(status_code=413, detail=f"the request is larger than {limit} bytes")


# --- who asks ---------------------------------------------------------------------------------------------------

def caller_role(request: Request) -> Role:
    """The authenticated caller's role (`api.http.auth` put the caller on the request)."""
    from api.http.auth import current_caller

    return Role(current_caller(request).role)


def archive_of(request: Request) -> Archive:
    """The archive acting as the caller (its user id in every custody event)."""
    from api.http.auth import archive_for

    return archive_for(request)


def who(request: Request) -> tuple[Archive, Role]:
    return archive_of(request), caller_role(request)


# --- paging -----------------------------------------------------------------------------------------------------

class Page(BaseModel):
    """One page of a list: `next` is the `after` to ask for the following page (None: this was the last)."""

    data: list[dict[str, Any]]
    next: str | None = None


LIMIT = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="Entries per page.")
AFTER = Query(None, max_length=200, description="The `id` of the last entry of the previous page.")


def page(rows: list[dict[str, Any]], limit: int, after: str | None, key: str = "id") -> Page:
    """The entries after `after` (by `key`), at most `limit`; `NotFound`-free: an unknown cursor is Invalid."""
    start = 0
    if after is not None:
        for index, row in enumerate(rows):
            if str(row.get(key)) == after:
                start = index + 1
                break
        else:
            raise Invalid(f"after: {after[:80]!r} is not an entry of this list (give the id of the last one seen)")
    chunk = rows[start : start + limit]
    more = start + limit < len(rows)
    return Page(data=chunk, next=str(chunk[-1][key]) if more and chunk else None)


def _given(model: BaseModel) -> dict[str, Any]:
    """The fields a request gave (an explicit null included: the services read it as "clear this field")."""
    return model.model_dump(exclude_unset=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    """An answer's documented fields; the services may add more (a history, a custodian's extra fields)."""

    model_config = ConfigDict(extra="allow")


class IncidentSummary(View):
    id: str
    ref: str
    type: str
    started_at: str
    started_precision: str
    governorate: str
    controlled_by: str | None = None
    attribution: str
    weapon: str | None = None
    facility_damage: str | None = None
    civilian_victims: int
    massacre: bool
    created_at: str
    updated_at: str


class IncidentView(IncidentSummary):
    district: str | None = None
    place: str | None = None
    neighbourhood: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    narrative: str | None = None
    attributions: list[dict[str, Any]]
    victims: int
    history: list[dict[str, Any]] | None = None


class VictimSummary(View):
    id: str
    ref: str
    incident_id: str
    incident_ref: str | None = None
    anonymous: bool
    name_withheld: bool
    name: str | None = Field(None, description="As the caller may see it: `[withheld]` for a withheld name "
                                               "(custodians see it); only with `names` in a list.")
    sex: str
    child: bool
    woman: bool
    civilian: bool
    professions: list[str]
    died_under_torture: bool
    governorate_of_death: str | None = None
    date_of_death: str | None = None
    date_documented: str
    status: str
    merged_into: str | None = None


class VictimView(VictimSummary):
    age: int | None = None
    age_group: str | None = None
    governorate_of_origin: str | None = None
    merged: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    consent: dict[str, str | None]
    history: list[dict[str, Any]] | None = None


class SourceSummary(View):
    id: str
    ref: str
    kind: str
    reliability: int
    alias: str | None = None
    has_identity: bool
    interviews: int
    flagged_interviews: int


class SourceView(View):
    id: str
    ref: str
    kind: str
    reliability: int
    alias: str | None = None
    url: str | None = None
    channel: str | None = None
    posted_at: str | None = None
    description: str | None = None
    identity: dict[str, Any] | str | None = Field(None, description="`sealed: custodians only` unless a custodian "
                                                                  "asked for it (`reveal_identity`).")
    interviews: list[dict[str, Any]]
    history: list[dict[str, Any]] | None = None


class InterviewView(View):
    id: str
    held_on: str
    informed_consent: bool
    no_payment: bool
    flags: list[str]


class LinkEnd(View):
    type: str
    id: str
    name: str | None = None


class LinkView(View):
    id: str
    kind: str
    a: LinkEnd
    b: LinkEnd
    certainty: str
    active: bool
    note: str | None = None
    changed: bool | None = Field(None, description="After a link request: whether anything changed.")
    history: list[dict[str, Any]] | None = None


class LinksOf(BaseModel):
    target: LinkEnd
    links: list[LinkView]


class IncidentPage(Page):
    data: list[IncidentSummary]  # type: ignore[assignment]


class VictimPage(Page):
    data: list[VictimSummary]  # type: ignore[assignment]


class SourcePage(Page):
    data: list[SourceSummary]  # type: ignore[assignment]


# --- incidents --------------------------------------------------------------------------------------------------

class IncidentFields(Strict):
    """An incident's fields, named as the interchange columns (`archive.records.rules.FIELDS`)."""

    type: str | None = Field(None, max_length=128, description="A key of the incident_types vocabulary.")
    started_at: str | None = Field(None, max_length=32, description="YYYY-MM-DD or YYYY-MM-DDTHH:MM (local).")
    started_precision: str | None = Field(None, max_length=16, description="day, hour, minute or about.")
    governorate: str | None = Field(None, max_length=128)
    district: str | None = Field(None, max_length=255)
    place: str | None = Field(None, max_length=255)
    neighbourhood: str | None = Field(None, max_length=255)
    latitude: float | str | None = None
    longitude: float | str | None = None
    controlled_by: str | None = Field(None, max_length=128)
    weapon: str | None = Field(None, max_length=128)
    facility_damage: str | None = Field(None, max_length=32)
    narrative: str | None = Field(None, max_length=20000)


class IncidentCreate(IncidentFields):
    ref: str = Field(..., min_length=1, max_length=128)
    type: str = Field(..., min_length=1, max_length=128)
    started_at: str = Field(..., min_length=1, max_length=32)
    governorate: str = Field(..., min_length=1, max_length=128)
    attribution: str | list[str] = Field(..., description="A party key, keys joined by '+' (joint), or a list.")
    reason: str | None = Field(None, max_length=5000, description="Why (kept, sealed, in the history).")


class IncidentEdit(IncidentFields):
    ref: str | None = Field(None, min_length=1, max_length=128, description="A new ref.")
    reason: str | None = Field(None, max_length=5000)


class Attribution(Strict):
    parties: str | list[str] = Field(..., description="A party key, keys joined by '+', or an other-parties key.")
    reason: str = Field(..., min_length=1, max_length=5000, description="Why the attribution is made or changed.")
    evidence: list[str] = Field(default_factory=list, max_length=100,
                                description="What it rests on: item ids, source refs …")


@router.get("/v1/incidents", response_model=IncidentPage, response_model_exclude_unset=True)
def list_incidents(request: Request, type: str | None = Query(None, max_length=128),
                   governorate: str | None = Query(None, max_length=128),
                   party: str | None = Query(None, max_length=128),
                   date_from: str | None = Query(None, alias="from", max_length=32),
                   date_to: str | None = Query(None, alias="to", max_length=32),
                   massacres: bool = False, limit: int = LIMIT, after: str | None = AFTER) -> Page:
    """Incidents by start date (clear fields only), filters combined (`evidence incident list`)."""
    from archive.services.incidents import list_incidents as service

    archive, role = who(request)
    rows = service(archive, role=role, type=type, governorate=governorate, party=party, date_from=date_from,
                   date_to=date_to, massacres=massacres)
    return page(rows, limit, after)


@router.post("/v1/incidents", status_code=201, response_model=IncidentView, response_model_exclude_unset=True)
def add_incident(request: Request, body: IncidentCreate) -> dict[str, Any]:
    """Record a new incident and its first attribution."""
    from archive.services.incidents import add_incident as service

    archive, role = who(request)
    fields = _given(body)
    reason = fields.pop("reason", None)
    fields["attribution"] = body.attribution if isinstance(body.attribution, str) else "+".join(body.attribution)
    return service(archive, fields, role=role, reason=reason)


@router.get("/v1/incidents/{ref}", response_model=IncidentView, response_model_exclude_unset=True)
def show_incident(request: Request, ref: str, history: bool = False) -> dict[str, Any]:
    """Every field of an incident, its attributions in the log's order; with `history`, every change."""
    from archive.services.incidents import show_incident as service

    archive, role = who(request)
    return service(archive, ref, role=role, history=history)


@router.patch("/v1/incidents/{ref}", response_model=IncidentView, response_model_exclude_unset=True)
def edit_incident(request: Request, ref: str, body: IncidentEdit) -> dict[str, Any]:
    """Change the fields given (null or "" clears one); the old state stays in the history."""
    from archive.services.incidents import edit_incident as service

    archive, role = who(request)
    changes = _given(body)
    reason = changes.pop("reason", None)
    return service(archive, ref, changes, role=role, reason=reason)


@router.post("/v1/incidents/{ref}/attributions", status_code=201, response_model=IncidentView,
             response_model_exclude_unset=True)
def attribute(request: Request, ref: str, body: Attribution) -> dict[str, Any]:
    """Attribute the incident (why, and on what evidence: both kept in its history)."""
    from archive.services.incidents import attribute as service

    archive, role = who(request)
    return service(archive, ref, body.parties, role=role, reason=body.reason, evidence=body.evidence)


# --- victims ----------------------------------------------------------------------------------------------------

class VictimFields(Strict):
    """A victim's fields, named as the interchange columns (`archive.records.rules.VICTIM_FIELDS`)."""

    incident_ref: str | None = Field(None, max_length=128, description="The incident (ref or id).")
    name: str | None = Field(None, max_length=255, description="Leave out for an anonymous victim.")
    name_withheld: bool | None = Field(None, description="The family asked that the name be withheld.")
    sex: str | None = Field(None, max_length=16, description="male, female or unknown.")
    age: int | None = Field(None, ge=0, le=200)
    age_group: str | None = Field(None, max_length=16, description="child, adult or unknown.")
    civilian: bool | None = None
    professions: str | list[str] | None = Field(None, description="Profession keys (a list, or joined by ';').")
    died_under_torture: bool | None = None
    governorate_of_death: str | None = Field(None, max_length=128)
    governorate_of_origin: str | None = Field(None, max_length=128)
    date_of_death: str | None = Field(None, max_length=32)
    date_documented: str | None = Field(None, max_length=32)


class VictimCreate(VictimFields):
    ref: str = Field(..., min_length=1, max_length=128)
    incident_ref: str = Field(..., min_length=1, max_length=128)
    sex: str = Field(..., min_length=1, max_length=16)
    civilian: bool
    date_documented: str = Field(..., min_length=1, max_length=32)
    family_consent: str | None = Field(None, max_length=16, description="For UN bodies: yes, no or not_asked.")
    consent_date: str | None = Field(None, max_length=32)
    consent_recorded_by: str | None = Field(None, max_length=255)
    reason: str | None = Field(None, max_length=5000)


class VictimEdit(VictimFields):
    ref: str | None = Field(None, min_length=1, max_length=128, description="A new ref.")
    reason: str | None = Field(None, max_length=5000)


class Identification(Strict):
    name: str = Field(..., min_length=1, max_length=255, description="The name the victim was identified by.")
    reason: str = Field(..., min_length=1, max_length=5000, description="How the victim was identified.")
    name_withheld: bool | None = Field(None, description="The family asks that the name be withheld.")


class ConsentAnswer(Strict):
    scope: Literal["un_bodies", "courts", "publication"]
    answer: Literal["yes", "no", "not_asked", "withdrawn"]
    date: str | None = Field(None, max_length=32, description="When the family answered or withdrew (YYYY-MM-DD).")
    recorded_by: str | None = Field(None, max_length=255)
    document: str | None = Field(None, max_length=2000)
    note: str | None = Field(None, max_length=5000)


class MatchPair(Strict):
    a: str = Field(..., min_length=1, max_length=128)
    b: str = Field(..., min_length=1, max_length=128)
    reason: str | None = Field(None, max_length=5000)
    keep: str | None = Field(None, max_length=128, description="Confirm: the record to keep (default: the first).")


class MatchSuggestion(Strict):
    victim: str | None = Field(None, max_length=128, description="One victim against the rest (default: all).")
    limit: int = Field(50, ge=1, le=MAX_PAGE)


@router.get("/v1/victims", response_model=VictimPage, response_model_exclude_unset=True)
def list_victims(request: Request, incident: str | None = Query(None, max_length=128),
                 status: Literal["active", "merged", "all"] = "active",
                 sex: str | None = Query(None, max_length=16), child: bool | None = None,
                 civilian: bool | None = None, governorate: str | None = Query(None, max_length=128),
                 date_from: str | None = Query(None, alias="from", max_length=32),
                 date_to: str | None = Query(None, alias="to", max_length=32),
                 names: bool = False, limit: int = LIMIT, after: str | None = AFTER) -> Page:
    """Victims by date documented (`evidence victim list`); with `names`, each name as the caller may see it."""
    from archive.services.victims import list_victims as service

    archive, role = who(request)
    rows = service(archive, role=role, incident=incident, status=None if status == "all" else status, sex=sex,
                   child=child, civilian=civilian, governorate=governorate, date_from=date_from, date_to=date_to,
                   names=names)
    return page(rows, limit, after)


@router.post("/v1/victims", status_code=201, response_model=VictimView, response_model_exclude_unset=True)
def add_victim(request: Request, body: VictimCreate) -> dict[str, Any]:
    """Record a victim (the consent columns record the family's consent for UN bodies)."""
    from archive.services.victims import add_victim as service

    archive, role = who(request)
    fields = _given(body)
    reason = fields.pop("reason", None)
    return service(archive, fields, role=role, reason=reason)


@router.get("/v1/victims/{ref}", response_model=VictimView, response_model_exclude_unset=True)
def show_victim(request: Request, ref: str, history: bool = False) -> dict[str, Any]:
    """A victim (the name as the caller may see it), consent per scope, merged reports; `history` too."""
    from archive.services.victims import show_victim as service

    archive, role = who(request)
    return service(archive, ref, role=role, history=history)


@router.patch("/v1/victims/{ref}", response_model=VictimView, response_model_exclude_unset=True)
def edit_victim(request: Request, ref: str, body: VictimEdit) -> dict[str, Any]:
    """Change the fields given (null or "" clears one); a withheld name stays a custodian's to lift."""
    from archive.services.victims import edit_victim as service

    archive, role = who(request)
    changes = _given(body)
    reason = changes.pop("reason", None)
    return service(archive, ref, changes, role=role, reason=reason)


@router.post("/v1/victims/{ref}/identify", response_model=VictimView, response_model_exclude_unset=True)
def identify_victim(request: Request, ref: str, body: Identification) -> dict[str, Any]:
    """Give an anonymous victim the name it was identified by, and how."""
    from archive.services.victims import identify_victim as service

    archive, role = who(request)
    return service(archive, ref, body.name, role=role, reason=body.reason, withheld=body.name_withheld)


@router.post("/v1/victims/{ref}/consents", status_code=201, response_model=VictimView,
             response_model_exclude_unset=True)
def record_consent(request: Request, ref: str, body: ConsentAnswer) -> dict[str, Any]:
    """Record the family's answer for one scope (`withdrawn` withdraws a consent given)."""
    from archive.services.victims import record_consent as record
    from archive.services.victims import withdraw_consent

    archive, role = who(request)
    if body.answer == "withdrawn":
        return withdraw_consent(archive, ref, body.scope, body.date or "", body.recorded_by, body.document,
                                body.note, role=role)
    return record(archive, ref, body.scope, body.answer, body.date, body.recorded_by, body.document, body.note,
                  role=role)


@router.get("/v1/victim-matches")
def list_matches(request: Request, state: Literal["candidate", "confirmed", "rejected", "all"] = "candidate",
                 victim: str | None = Query(None, max_length=128),
                 limit: int | None = Query(None, ge=1, le=MAX_PAGE)) -> list[dict[str, Any]]:
    """Pairs of victim reports already suggested (pending by default), best first."""
    from archive.services.victims import list_matches as service

    archive, role = who(request)
    return service(archive, role=role, state=None if state == "all" else state, victim=victim, limit=limit)


@router.post("/v1/victim-matches/suggest")
def suggest_matches(request: Request, body: MatchSuggestion | None = None) -> list[dict[str, Any]]:
    """Look for new pairs of reports of one person, and list the pending ones."""
    from archive.services.victims import suggest_matches as service

    archive, role = who(request)
    body = body or MatchSuggestion.model_validate({})
    return service(archive, role=role, victim=body.victim, limit=body.limit)


@router.post("/v1/victim-matches/confirm", response_model=VictimView, response_model_exclude_unset=True)
def confirm_match(request: Request, body: MatchPair) -> dict[str, Any]:
    """A and B are one person: merged (both keep their history); the kept victim."""
    from archive.services.victims import confirm_match as service

    archive, role = who(request)
    return service(archive, body.a, body.b, role=role, reason=body.reason or "", keep=body.keep)


@router.post("/v1/victim-matches/reject")
def reject_match(request: Request, body: MatchPair) -> dict[str, Any]:
    """A and B are different people: never suggested again."""
    from archive.services.victims import reject_match as service

    archive, role = who(request)
    return service(archive, body.a, body.b, role=role, reason=body.reason)


# --- sources ----------------------------------------------------------------------------------------------------

Identity = dict[str, str] | str


class SourceFields(Strict):
    kind: str | None = Field(None, max_length=32,
                             description="survivor, eyewitness, filmer, open_source, medical or official.")
    alias: str | None = Field(None, max_length=255)
    url: str | None = Field(None, max_length=2000)
    channel: str | None = Field(None, max_length=255)
    posted_at: str | None = Field(None, max_length=32)
    description: str | None = Field(None, max_length=20000)


class SourceCreate(SourceFields):
    ref: str = Field(..., min_length=1, max_length=128)
    kind: str = Field(..., min_length=1, max_length=32)
    identity: Identity | None = Field(None, description="A witness's real identity and contacts (encrypted to the "
                                                        "custodians; never shown back but to them).")
    reason: str | None = Field(None, max_length=5000)


class SourceEdit(SourceFields):
    ref: str | None = Field(None, min_length=1, max_length=128)
    identity: Identity | None = None
    forget_identity: bool = False
    reason: str | None = Field(None, max_length=5000)


class InterviewIn(Strict):
    held_on: str = Field(..., max_length=32, description="YYYY-MM-DD.")
    informed_consent: bool
    no_payment: bool = Field(..., description="true: no payment was offered or made.")
    interviewer: str | None = Field(None, max_length=255)
    notes: str | None = Field(None, max_length=20000)


@router.get("/v1/sources", response_model=SourcePage, response_model_exclude_unset=True)
def list_sources(request: Request, kind: str | None = Query(None, max_length=32), limit: int = LIMIT,
                 after: str | None = AFTER) -> Page:
    """Sources by ref: kind, reliability, alias, interviews (never an identity)."""
    from archive.services.sources import list_sources as service

    archive, role = who(request)
    return page(service(archive, role=role, kind=kind), limit, after)


@router.post("/v1/sources", status_code=201, response_model=SourceView, response_model_exclude_unset=True)
def add_source(request: Request, body: SourceCreate) -> dict[str, Any]:
    """Record a source; an identity given is encrypted to the custodians (the caller never reads it back)."""
    from archive.services.sources import add_source as service

    archive, role = who(request)
    fields = _given(body)
    reason, identity = fields.pop("reason", None), fields.pop("identity", None)
    return service(archive, fields, role=role, identity=identity, reason=reason)


@router.get("/v1/sources/{ref}", response_model=SourceView, response_model_exclude_unset=True)
def show_source(request: Request, ref: str, history: bool = False, reveal_identity: bool = False
                ) -> dict[str, Any]:
    """A source and its interviews; the identity stays sealed unless a custodian asks (`reveal_identity`)."""
    from archive.services.sources import show_source as service

    archive, role = who(request)
    return service(archive, ref, role=role, reveal_identity=reveal_identity, history=history)


@router.patch("/v1/sources/{ref}", response_model=SourceView, response_model_exclude_unset=True)
def edit_source(request: Request, ref: str, body: SourceEdit) -> dict[str, Any]:
    """Change the fields given; `identity` replaces the sealed identity, `forget_identity` removes it."""
    from archive.services.sources import edit_source as service

    archive, role = who(request)
    changes = _given(body)
    reason, identity = changes.pop("reason", None), changes.pop("identity", None)
    forget = bool(changes.pop("forget_identity", False))
    return service(archive, ref, changes, role=role, identity=identity, forget_identity=forget, reason=reason)


@router.post("/v1/sources/{ref}/interviews", status_code=201, response_model=InterviewView,
             response_model_exclude_unset=True)
def add_interview(request: Request, ref: str, body: InterviewIn) -> dict[str, Any]:
    """Record an interview (without informed consent, or with a payment, it is recorded and flagged)."""
    from archive.services.sources import add_interview as service

    archive, role = who(request)
    return service(archive, ref, body.held_on, body.informed_consent, body.no_payment, body.interviewer,
                   body.notes, role=role)


# --- links and near-duplicate candidates ------------------------------------------------------------------------

LinkType = Literal["item", "incident", "victim", "source"]


class LinkIn(Strict):
    a: str = Field(..., min_length=1, max_length=128, description="An item id (or prefix), or a record ref or id.")
    b: str = Field(..., min_length=1, max_length=128)
    a_type: LinkType | None = None
    b_type: LinkType | None = None
    kind: str | None = Field(None, max_length=32)
    certainty: Literal["confirmed", "probable", "possible"] | None = None
    note: str | None = Field(None, max_length=4000, description="Why it is relevant (sealed).")
    reason: str | None = Field(None, max_length=5000)


class Unlink(Strict):
    reason: str | None = Field(None, max_length=5000)


class Decision(Strict):
    item: str = Field(..., min_length=1, max_length=128)
    other: str = Field(..., min_length=1, max_length=128)
    note: str | None = Field(None, max_length=4000)
    reason: str | None = Field(None, max_length=5000)


@router.get("/v1/links", response_model=LinksOf, response_model_exclude_unset=True)
def links_of(request: Request, of: str = Query(..., min_length=1, max_length=128,
                                                 description="An item, incident, victim or source."),
             type: LinkType | None = None, all: bool = False) -> dict[str, Any]:
    """What a record or an item is linked to (`evidence links NAME`); `all`: unlinked ones too."""
    from archive.services.links import links_of as service

    archive, role = who(request)
    return service(archive, of, role=role, type_=type, include_inactive=all)


@router.post("/v1/links", status_code=201, response_model=LinkView, response_model_exclude_unset=True)
def link(request: Request, body: LinkIn) -> dict[str, Any]:
    """Link two things (linking a linked pair again changes only what is given; `changed` says so)."""
    from archive.services.links import link as service

    archive, role = who(request)
    return service(archive, body.a, body.b, role=role, certainty=body.certainty, note=body.note, kind=body.kind,
                   a_type=body.a_type, b_type=body.b_type, reason=body.reason)


@router.get("/v1/links/{link_id}", response_model=LinkView, response_model_exclude_unset=True)
def show_link(request: Request, link_id: str, history: bool = False) -> dict[str, Any]:
    from archive.services.links import show_link as service

    archive, role = who(request)
    return service(archive, link_id, role=role, history=history)


@router.delete("/v1/links/{link_id}", response_model=LinkView, response_model_exclude_unset=True)
def unlink(request: Request, link_id: str, body: Unlink | None = None) -> dict[str, Any]:
    """Mark the link inactive (its row and history stay); the reason, if any, in a JSON body."""
    from archive.services.links import unlink as service

    archive, role = who(request)
    return service(archive, link_id, role=role, reason=body.reason if body is not None else None)


@router.get("/v1/candidates")
def list_candidates(request: Request, state: Literal["candidate", "confirmed", "rejected"] | None = None
                    ) -> list[dict[str, Any]]:
    """Near-duplicate pairs suggested at ingest, closest first."""
    from archive.services.links import list_candidates as service

    archive, role = who(request)
    return service(archive, role=role, state=state)


@router.post("/v1/candidates/confirm", response_model=LinkView, response_model_exclude_unset=True)
def confirm_candidate(request: Request, body: Decision) -> dict[str, Any]:
    """The pair is the same footage: a confirmed `same_footage` link (never a merge)."""
    from archive.services.links import confirm_candidate as service

    archive, role = who(request)
    return service(archive, body.item, body.other, role=role, note=body.note, reason=body.reason)


@router.post("/v1/candidates/reject", response_model=LinkView, response_model_exclude_unset=True)
def reject_candidate(request: Request, body: Decision) -> dict[str, Any]:
    """The pair is not the same footage: never suggested as such again."""
    from archive.services.links import reject_candidate as service

    archive, role = who(request)
    return service(archive, body.item, body.other, role=role, note=body.note, reason=body.reason)


# --- search and statistics --------------------------------------------------------------------------------------

class SearchResult(BaseModel):
    query: dict[str, Any]
    items: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    next: str | None = None  # with `limit` or `after`: the `after` of the next page of items
    total: int | None = None  # with `limit` or `after`: how many items match


@router.get("/v1/search", response_model=SearchResult, response_model_exclude_unset=True)
def search(request: Request,
           date_from: str | None = Query(None, alias="from", max_length=32),
           date_to: str | None = Query(None, alias="to", max_length=32),
           governorate: str | None = Query(None, max_length=128),
           box: str | None = Query(None, max_length=128, description="LAT1,LON1,LAT2,LON2 (LON1 the western edge)."),
           party: str | None = Query(None, max_length=128),
           type: str | None = Query(None, max_length=128),
           victim: Literal["child", "woman", "civilian", "torture", "medical", "media", "civil_defence"] | None = None,
           source_kind: str | None = Query(None, max_length=32),
           linked: bool | None = None,
           captured_from: str | None = Query(None, max_length=32),
           captured_to: str | None = Query(None, max_length=32),
           device: str | None = Query(None, max_length=128),
           sha256: str | None = Query(None, max_length=128),
           similar_to: str | None = Query(None, max_length=128),
           limit: int | None = Query(None, ge=1, le=MAX_PAGE, description="Items per page (default: every one)."),
           after: str | None = AFTER) -> dict[str, Any]:
    """Items and incidents matching every option given (`evidence search`, the same option names); `limit` and
    `after` page the items (then `next` and `total` are given)."""
    from archive.services.record_search import Query as Search
    from archive.services.record_search import search_records

    archive, role = who(request)
    query = Search(date_from=date_from, date_to=date_to, governorate=governorate, box=box, party=party, type_=type,
                   category=victim, source_kind=source_kind, linked=linked, captured_from=captured_from,
                   captured_to=captured_to, device=device, sha256=sha256, similar_to=similar_to)
    return search_records(archive, query, role=role, limit=limit, after=after)


@router.get("/v1/stats")
def stats(request: Request, date_from: str | None = Query(None, alias="from", max_length=32),
          date_to: str | None = Query(None, alias="to", max_length=32),
          date: Literal["documented", "death"] = "documented",
          by: Literal["party", "month", "governorate", "type"] = "party") -> dict[str, Any]:
    """Civilian deaths like a monthly report (`evidence stats`): rows, groups, total."""
    from archive.services.stats import statistics

    archive, role = who(request)
    return statistics(archive, role=role, date_from=date_from, date_to=date_to, date=date, by=by)


@router.get("/v1/vocab")
def vocabularies(request: Request, vocabulary: Literal["parties", "incident_types", "governorates", "professions",
                                                       "weapons"] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The vocabularies records are checked against (keys, labels, groups, former names): what a form offers."""
    from archive.services.records_io import show_vocab

    archive, role = who(request)
    return show_vocab(archive, vocabulary, role=role)


# --- import: multipart, sealed at rest ---------------------------------------------------------------------------

SEGMENT = 64 * 1024


class SealedSpool:
    """Bytes written once, then read back, never in clear on disk: each segment of up to 64 KiB is sealed with
    ChaCha20-Poly1305 under a random key that lives only in this object (nonce: the segment's number, unique
    under a key used once; the last segment marked in the AAD, so a cut file is an error, not a short one).
    The file is anonymous (unlinked at once where the system allows), and gone with its descriptor."""

    def __init__(self, name: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self.name = name
        self.size = 0
        self._aead = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
        self._file = tempfile.TemporaryFile(prefix=".evidence-import-")  # noqa: SIM115 (closed by close)
        self._buffer = bytearray()
        self._segments = 0
        self._sealed = False

    def _aad(self, number: int, last: bool) -> bytes:
        return struct.pack(">Q?", number, last)

    def _put(self, data: bytes, last: bool) -> None:
        nonce = self._segments.to_bytes(12, "big")
        sealed = self._aead.encrypt(nonce, data, self._aad(self._segments, last))
        self._file.write(struct.pack(">I", len(sealed)) + sealed)
        self._segments += 1

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) > SEGMENT:
            self._put(bytes(self._buffer[:SEGMENT]), False)
            del self._buffer[:SEGMENT]

    def finish(self) -> None:
        self._put(bytes(self._buffer), True)
        self._buffer.clear()
        self._file.flush()
        self._sealed = True

    def segments(self) -> Iterator[bytes]:
        """The plaintext again, a segment at a time (`Invalid` if the file was altered or cut)."""
        from cryptography.exceptions import InvalidTag

        assert self._sealed
        self._file.seek(0)
        number = 0
        while True:
            head = self._file.read(4)
            if len(head) < 4:
                raise Invalid(f"{self.name}: the sealed spool of the upload was cut short")
            sealed = self._file.read(struct.unpack(">I", head)[0])
            nonce = number.to_bytes(12, "big")
            for last in (False, True):
                try:
                    data = self._aead.decrypt(nonce, sealed, self._aad(number, last))
                    break
                except InvalidTag:
                    continue
            else:
                raise Invalid(f"{self.name}: the sealed spool of the upload was altered")
            yield data
            if last:
                return
            number += 1

    def reader(self) -> io.BufferedReader:
        """A binary file object over the plaintext (readline and all), for the importer."""
        spool = self

        class Raw(io.RawIOBase):
            def __init__(self) -> None:
                self._chunks = spool.segments()
                self._left = b""
                self.name = spool.name

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                while not self._left:
                    try:
                        self._left = next(self._chunks)
                    except StopIteration:
                        return 0
                n = min(len(buffer), len(self._left))
                buffer[:n] = self._left[:n]
                self._left = self._left[n:]
                return n

            def close(self) -> None:
                super().close()
                spool.close()

        return io.BufferedReader(Raw(), SEGMENT)  # its `name` is the raw file's: the report names the file so

    def close(self) -> None:
        self._buffer.clear()
        self._file.close()


async def multipart_parts(request: Request, sink: Callable[[str, str | None], Any], limit: int) -> None:
    """Parse a multipart/form-data body as it arrives, handing each part's bytes to `sink(field, filename)`
    (an object with `write(bytes)`, or None to refuse the part); never buffered whole, never spooled by the
    framework. HTTP 413 past `limit` bytes; `Invalid` for a body that is not multipart."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Invalid("the request body must be multipart/form-data (a file in a form field)")
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "target": None}

    def header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        state["target"] = sink(name, filename.decode("utf-8", "replace") if filename is not None else None)

    def part_data(data: bytes, start: int, end: int) -> None:
        if state["target"] is None:
            raise Invalid("an unexpected form field (see the route's documentation for the fields it takes)")
        state["target"].write(data[start:end])

    def part_begin() -> None:
        state["headers"], state["target"] = {}, None

    parser = MultipartParser(boundary, {"on_part_begin": part_begin, "on_header_field": header_field,
                                        "on_header_value": header_value, "on_header_end": header_end,
                                        "on_headers_finished": headers_finished, "on_part_data": part_data})
    size = 0
    try:
        async for chunk in _body(request):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except (Invalid, HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - the parser's own errors: a malformed body
        raise Invalid(f"not a well-formed multipart/form-data body ({type(exc).__name__})") from None


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _label(field: str, filename: str | None) -> str:
    """How the report names a file: the client's file name when it is one printable line, else the field."""
    if filename:
        base = os.path.basename(filename.replace("\\", "/"))
        if base and len(base) <= 255 and base.isprintable():
            return base
    return field


IMPORT_BODY = {"content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {"incidents": {"type": "string", "format": "binary", "description": "An incidents file."},
                   "victims": {"type": "string", "format": "binary", "description": "A victims file."}}}}}}


class ImportReport(BaseModel):
    imported: bool
    incidents: dict[str, Any] | None = None
    victims: dict[str, Any] | None = None


@router.post("/v1/import", response_model=ImportReport, response_model_exclude_none=True,
             max_body_size=MAX_IMPORT_BYTES,
             openapi_extra={"requestBody": IMPORT_BODY},
             responses={413: {"description": "The files are larger than the import limit."},
                        422: {"description": "A bad row anywhere: nothing imported; the report lists the rows."}})
async def import_records(request: Request, format: Literal["csv", "jsonl"] = "csv") -> Any:
    """Import incidents and/or victims in one transaction (custodians only): any bad row, nothing imported
    (422 with the report). The files never rest in clear (see the module docstring)."""
    from archive.services.records_io import import_records as service

    role = caller_role(request)
    if role != Role.CUSTODIAN:  # refused before a byte of personal data is read
        from archive.services.errors import Forbidden

        raise Forbidden(f"importing records needs the custodian role, not {role}")
    spools: dict[str, SealedSpool] = {}

    def sink(field: str, filename: str | None) -> SealedSpool:
        if field not in ("incidents", "victims"):
            raise Invalid(f"form field {field[:40]!r}: give `incidents` and/or `victims` (files)")
        if field in spools:
            raise Invalid(f"form field {field!r} given twice")
        spools[field] = SealedSpool(_label(field, filename))
        return spools[field]

    try:
        await multipart_parts(request, sink, MAX_IMPORT_BYTES)
        if not spools:
            raise Invalid("give an incidents file, a victims file, or both (form fields `incidents`, `victims`)")
        for spool in spools.values():
            spool.finish()
        archive = archive_of(request)
        readers = {what: spool.reader() for what, spool in spools.items()}
        report = await run_in_threadpool(service, archive, incidents=readers.get("incidents"),
                                         victims=readers.get("victims"), format=format, role=role)
    finally:
        for spool in spools.values():
            spool.close()
    if not report["imported"]:
        bad = sum(report[w]["error_count"] for w in ("incidents", "victims") if w in report)
        return JSONResponse(status_code=422, content={"error": "invalid",
                                                      "detail": f"nothing imported: {bad} bad row(s)",
                                                      "report": report})
    return report
