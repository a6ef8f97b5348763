"""Sources: who or what evidence came from, their reliability rank, witnesses' aliases and interviews.

A source is a person (survivor, eyewitness, someone who filmed, medical
staff) or a publication (open source: URL, channel, post time; an official
statement). Its reliability rank is the brief's, derived from the kind and
never typed. A witness may be known by an alias; the real identity and
contacts are encrypted to the custodian recipients alone
(`archive.records.identity`) and shown only to a custodian who asks for it
with a custodian key.

Interviews record informed consent and "no payment offered or made" each time.
An interview without informed consent (or with a payment) is recorded, not
refused: it took place, and the archive must be able to say so; it is flagged
in every view so it is not relied on (or published) until the matter is
settled.

Sources are not compartmented (a witness speaks of many incidents, some in
restricted cases, some not); none of these views names an incident. Their
links to what a restricted case hides are hidden with those things
(`archive.services.links`), and an item a case hides cannot be given a
provenance by a caller it is hidden from (not found).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, or_
from sqlmodel import col, select

from archive.custody.log import ACCESS, append_event
from archive.db import transaction
from archive.records.changes import new_id
from archive.records.common import (
    check_choice,
    check_day,
    check_ref,
    check_started,
    check_text,
    find,
    record_keys,
    require,
)
from archive.records.store import KINDS, put, state_of
from archive.records.tables import Interview, Source
from archive.records.vocab import SOURCE_RELIABILITY
from archive.roles import Role, sees_identities
from archive.services.errors import Forbidden, Invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive

SOURCE_KINDS = tuple(SOURCE_RELIABILITY)
FIELDS = ("ref", "kind", "alias", "url", "channel", "posted_at", "description")
SEALED_IDENTITY = "sealed: custodians only"  # what non-custodians (and a custodian who did not ask) see
NO_CONSENT = "no informed consent recorded: do not rely on or publish this interview"
PAYMENT = "a payment was offered or made: the interview's weight is in question"
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def source_state(fields: dict[str, Any], identity: str | None) -> dict[str, Any]:
    """A checked source state; `identity` is already the sealed age file (or None)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    for name in ("ref", "kind"):
        if fields.get(name) in (None, ""):
            raise Invalid(f"{name}: required")
    kind = check_choice(str(fields["kind"]).strip(), SOURCE_KINDS, "kind")
    url = check_text(fields.get("url"), "url", 2000)
    if url is not None and not _URL.match(url):
        raise Invalid("url: not an http(s) URL")
    if kind == "open_source" and url is None:
        raise Invalid("url: an open-source publication needs its URL")
    posted = fields.get("posted_at")
    posted_at = check_started(posted, "posted_at")[0] if posted not in (None, "") else None
    return {"ref": check_ref(fields["ref"], "ref"), "kind": kind,
            "alias": check_text(fields.get("alias"), "alias", 255), "url": url,
            "channel": check_text(fields.get("channel"), "channel", 255), "posted_at": posted_at,
            "description": check_text(fields.get("description"), "description"), "identity": identity}


def _ref_free(session: Session, ref: str) -> None:
    if session.exec(select(Source.id).where(Source.ref == ref)).first() is not None:
        raise Invalid(f"ref: a source {ref!r} exists already")


def add_source(archive: Archive, fields: dict[str, Any], *, role: Role, identity: Any = None,
               reason: str | None = None) -> dict[str, Any]:
    """Record a new source. `identity` (a witness's real name and contacts) is encrypted to the custodians:
    an investigator may record it and never read it back."""
    from archive.records.identity import seal_identity

    require(role, "adding a source")
    source_state(fields, None)  # every field checked before anything is encrypted or written
    sealed = seal_identity(archive, identity) if identity is not None else None
    keys = record_keys(archive, "recording a source")
    with transaction(archive.engine) as session:
        state = source_state(fields, sealed)
        _ref_free(session, state["ref"])
        source_id = new_id("src")
        put(session, keys, archive.actor, "source", source_id, state, change="create", reason=reason)
    return show_source(archive, source_id, role=role)


def edit_source(archive: Archive, name: str, changes: dict[str, Any], *, role: Role, identity: Any = None,
                forget_identity: bool = False, reason: str | None = None) -> dict[str, Any]:
    """Change some fields (a field given as None or "" is cleared); `identity` replaces the sealed identity,
    `forget_identity` removes it (its history keeps the earlier one, still encrypted)."""
    from archive.records.identity import seal_identity

    require(role, "editing a source")
    if "identity" in changes:
        raise Invalid("identity: give it as the identity (a file or stdin), never as a field")
    if identity is not None and forget_identity:
        raise Invalid("identity: give a new identity or forget it, not both")
    sealed = seal_identity(archive, identity) if identity is not None else None
    keys = record_keys(archive, "editing a source")
    with transaction(archive.engine) as session:
        row = find(session, Source, name, "source", lock=True)
        old = state_of(keys, KINDS["source"], row)
        kept = None if forget_identity else (sealed or old.get("identity"))
        state = source_state({**{k: old.get(k) for k in FIELDS}, **changes}, kept)
        if state["ref"] != old["ref"]:
            _ref_free(session, state["ref"])
        if state != old:
            put(session, keys, archive.actor, "source", row.id, state, change="edit", reason=reason)
        source_id = row.id
    return show_source(archive, source_id, role=role)


def _flags(row: Interview) -> list[str]:
    return [flag for flag, bad in ((NO_CONSENT, not row.informed_consent), (PAYMENT, not row.no_payment)) if bad]


def _identity_view(blob: str | None, reveal: list[Any] | None) -> Any:
    """What a view shows in place of the sealed identity: nothing held, the marker, or (custodian) the opened one."""
    from archive.records.identity import open_identity

    if blob is None:
        return None
    if reveal is None:
        return SEALED_IDENTITY
    return open_identity(blob, reveal)


def _reveal_keys(archive: Archive, role: Role, reveal_identity: bool, identity_path: Path | None) -> list[Any] | None:
    from archive.records.identity import custodian_identities

    if not reveal_identity:
        return None
    if not sees_identities(role):
        raise Forbidden(f"a witness's real identity is for custodians only, not {role}")
    return custodian_identities(archive, identity_path)


IDENTITY_VIEWED = "reveal witness identity"  # details["action"] of the access event a reveal writes


def show_source(archive: Archive, name: str, *, role: Role, reveal_identity: bool = False,
                identity_path: Path | None = None, history: bool = False) -> dict[str, Any]:
    """One source: its fields, reliability rank and interviews (each flagged when consent or no-payment is
    missing). The identity shows as sealed unless a custodian asks (`reveal_identity`) with a custodian key
    (`identity_path`, else `keys/custodian.key`); with `history`, every change, its identity treated alike.
    A reveal is an `access` custody event (the source's id only), in the same transaction as the reading."""
    from archive.catalog.sealing import open_row
    from archive.records.changes import history as changes_of

    require(role, "reading a source")
    reveal = _reveal_keys(archive, role, reveal_identity, identity_path)
    keys = record_keys(archive, "reading a source")
    actor = archive.actor if reveal is not None else None  # resolved before the transaction (SQLite's lock)
    with transaction(archive.engine) as session:
        row = find(session, Source, name, "source")
        state = state_of(keys, KINDS["source"], row)
        if actor is not None and (state.get("identity") is not None or history):
            # Seeing a witness's real identity is an access to it: the log says who, when and which source.
            append_event(session, ACCESS, actor=actor, objects=[row.id],
                         details={"action": IDENTITY_VIEWED, "source": row.id})
        shown: dict[str, Any] = {"id": row.id, **state, "reliability": row.reliability,
                                 "identity": _identity_view(state.get("identity"), reveal),
                                 "created_at": row.created_at, "updated_at": row.updated_at}
        interviews = session.exec(select(Interview).where(Interview.source_id == row.id)
                                  .order_by(col(Interview.held_on), col(Interview.id))).all()
        shown["interviews"] = [{"id": i.id, "held_on": i.held_on, "informed_consent": i.informed_consent,
                                "no_payment": i.no_payment, "flags": _flags(i), "at": i.at, "by": i.by,
                                **open_row(keys, "interviews", i.id, i.key_version, i.sealed)} for i in interviews]
        if history:
            changes = changes_of(session, keys, row.id)
            for change in changes:
                for side in ("before", "after"):
                    if change[side] is not None:
                        change[side] = {**change[side],
                                        "identity": _identity_view(change[side].get("identity"), reveal)}
            shown["history"] = changes
    return shown


def list_sources(archive: Archive, *, role: Role, kind: str | None = None) -> list[dict[str, Any]]:
    """Sources by ref: kind, reliability, alias, whether an identity is held, interviews and flagged ones.
    Never the identity itself, whoever asks."""
    require(role, "listing sources")
    if kind is not None:
        check_choice(kind, SOURCE_KINDS, "kind")
    keys = record_keys(archive, "listing sources")
    with transaction(archive.engine) as session:
        query = select(Source).order_by(col(Source.ref))
        if kind is not None:
            query = query.where(Source.kind == kind)
        rows = session.exec(query).all()
        flagged = case((or_(col(Interview.informed_consent).is_(False), col(Interview.no_payment).is_(False)), 1),
                       else_=0)
        counts = {sid: (int(n), int(bad or 0)) for sid, n, bad in session.exec(
            select(Interview.source_id, func.count(), func.sum(flagged)).group_by(col(Interview.source_id))).all()}
        out = []
        for row in rows:
            state = state_of(keys, KINDS["source"], row)
            n, bad = counts.get(row.id, (0, 0))
            out.append({"id": row.id, "ref": row.ref, "kind": row.kind, "reliability": row.reliability,
                        "alias": state.get("alias"), "has_identity": state.get("identity") is not None,
                        "interviews": n, "flagged_interviews": bad})
    return out


def add_interview(archive: Archive, source: str, held_on: str, informed_consent: Any, no_payment: Any,
                  interviewer: str | None = None, notes: str | None = None, *, role: Role) -> dict[str, Any]:
    """Record one interview of a source. Both answers are required (true or false); a `false` is recorded
    and flagged (see the module's docstring), never silently accepted nor refused."""
    from archive.records.rules import check_bool

    require(role, "recording an interview")
    for what, value in (("informed_consent", informed_consent), ("no_payment", no_payment)):
        if value is None or value == "":
            raise Invalid(f"{what}: required (true or false)")
    day = check_day(held_on, "held_on")
    consent = check_bool(informed_consent, "informed_consent")
    unpaid = check_bool(no_payment, "no_payment")
    interviewer_text = check_text(interviewer, "interviewer", 255)
    notes_text = check_text(notes, "notes")
    keys = record_keys(archive, "recording an interview")
    with transaction(archive.engine) as session:
        row = find(session, Source, source, "source")
        if row.kind in ("open_source", "official"):
            raise Invalid(f"source: a {row.kind} source is a publication, not a person to interview")
        interview_id = new_id("itv")
        put(session, keys, archive.actor, "interview", interview_id,
            {"source_id": row.id, "held_on": day, "informed_consent": consent, "no_payment": unpaid,
             "interviewer": interviewer_text, "notes": notes_text}, change="create")
        from archive.services.previews import drop_previews_linked_to_interviews

        drop_previews_linked_to_interviews(session)  # the items this witness handed over or is linked to
        source_id = row.id
    shown = show_source(archive, source_id, role=role)
    return next(i for i in shown["interviews"] if i["id"] == interview_id)


def source_id_for(archive: Archive, name: str) -> str:
    """The id of the source a ref (or id) names, from clear columns alone: usable on a locked ingest server."""
    from sqlmodel import Session

    from archive.db import read_only

    with Session(read_only(archive.engine)) as session:
        return find(session, Source, name, "source").id


def check_channel(channel: str | None) -> str | None:
    """How an item came (archive.records.vocab CHANNELS), or None."""
    from archive.records.vocab import CHANNELS

    return check_choice(channel.strip(), CHANNELS, "channel") if channel is not None else None


def set_provenance(archive: Archive, item: str, *, role: Role, channel: str | None = None,
                   source: str | None = None, arrival: int | None = None,
                   reason: str | None = None) -> dict[str, Any]:
    """Give an existing arrival of an item its channel and source record (kept as given when not asked to change).

    The change is a record change like any other (sealed state, salted
    commitment) whose custody event names the item, so its timeline shows it.
    An item with several arrivals needs `arrival` (the ids `show ITEM` lists).
    """
    from archive.catalog.items import Provenance
    from archive.records.changes import Change, record
    from archive.records.compartments import hidden_in
    from archive.records.provenance import KIND, provenance_state, record_id
    from archive.services.items import resolve_item

    require(role, "recording the provenance of an item")
    if channel is None and source is None:
        raise Invalid("give a channel, a source record, or both")
    channel = check_channel(channel)
    keys = record_keys(archive, "recording the provenance of an item")
    with transaction(archive.engine) as session:
        found = resolve_item(session, item, hidden_in(archive, session, role).items)
        rows = session.exec(select(Provenance).where(Provenance.item_id == found.id)
                            .order_by(col(Provenance.id))).all()
        if arrival is not None:
            chosen = [r for r in rows if r.id == arrival]
            if not chosen:
                raise Invalid(f"arrival: item {found.id} has no arrival {arrival} "
                              f"(its arrivals: {', '.join(str(r.id) for r in rows)})")
        elif len(rows) != 1:
            raise Invalid(f"arrival: item {found.id} arrived {len(rows)} times (arrivals "
                          f"{', '.join(str(r.id) for r in rows)}): say which with --arrival")
        else:
            chosen = list(rows)
        row = chosen[0]
        session.refresh(row, with_for_update=True)  # two changes at once follow each other
        source_row = find(session, Source, source, "source") if source is not None else None
        new_channel = channel or row.channel
        new_source = source_row.id if source_row is not None else row.source_id
        new = provenance_state(row, new_channel, new_source)
        changed = (new_channel, new_source) != (row.channel, row.source_id)
        if changed:
            row.channel, row.source_id = new_channel, new_source
            session.add(row)
            record(session, keys, archive.actor,
                   Change(record_id(row), KIND, "provenance", new, reason, item_id=found.id))
            session.flush()
            from archive.services.previews import drop_previews_linked_to_interviews

            drop_previews_linked_to_interviews(session, [found.id])  # handed over by an interviewed witness
        shown = session.get(Source, new_source) if new_source else None
        ref = shown.ref if shown is not None else None
    return {**new, "source_ref": ref, "changed": changed}
