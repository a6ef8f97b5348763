"""Victims: add, edit, show, list, identify, the family's consent per scope, and merging reports of one person.

Who sees a name is part of every function's contract: a name the family
asked to withhold is shown to custodians only, everywhere (a record, a
list, a history, a match candidate), and never written anywhere in clear.
A name is withheld for a person: once any report merged into one person
withholds it, every report of that person does. Free text about such a
person (reasons, consent notes and documents, link notes) may spell the name
any way, so non-custodians do not see it either. Pairs of reports that
involve a withheld person are matched, listed and decided by custodians
only: a pair's clues ("same normalized name") would otherwise confirm a
guessed name put on a probe record.
Listing reads clear columns only, unless names are asked for: then a
custodian sees every name and an investigator the names not withheld.

Consent is a record per scope (`un_bodies`, `courts`, `publication`); the
current consent for a scope is the latest one recorded in the custody log's
order (its change's event, then its place in an imported batch: both bound
by the change's commitment, unlike the row's editable `at`), and a
withdrawal is one more record, so the history stays. A victim merged into another keeps
its own consents and links: they are reached through the victim it was
merged into (`family`, `consent_for`).

Compartments: a victim a restricted case hides from the caller
(`archive.records.compartments`: its incident is in the case, it is linked to
such an incident, or it is merged with such a victim) is not found, exactly
like an unknown ref, is missing from lists and match candidates, and cannot be
written to or attached to a hidden incident. Refs are unique across the
archive, so a new victim under a hidden victim's ref is refused as a ref
already used: the one thing a compartment cannot hide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert
from sqlmodel import col, select

from archive.db import transaction
from archive.records.changes import new_id
from archive.records.common import check_day, check_text, find, record_keys, require
from archive.records.compartments import NOTHING, Hidden, excluding, find_visible, hidden_in
from archive.records.matches import STATES as MATCH_STATES
from archive.records.matches import VictimMatch, pair
from archive.records.rules import VICTIM_FIELDS, consent_state, victim_state
from archive.records.store import KINDS, put, state_of
from archive.records.tables import Consent, Incident, Link, RecordChange, Victim
from archive.records.vocab import CONSENT_SCOPES, Vocab
from archive.roles import Role, sees_identities
from archive.services.errors import Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys
    from archive.records.matching import Profile

CONSENT_FIELDS = ("family_consent", "consent_date", "consent_recorded_by")  # the interchange's UN-bodies consent
WITHHELD = "[withheld]"
VICTIM = KINDS["victim"]


# --- who sees what -------------------------------------------------------------------------------------------

def _shown_state(state: dict[str, Any] | None, role: Role, withheld: bool) -> dict[str, Any] | None:
    if state is None or sees_identities(role) or not withheld:
        return state
    return {**state, "name": WITHHELD if state.get("name") else None}


def _shown_history(changes: list[dict[str, Any]], role: Role, withheld: bool) -> list[dict[str, Any]]:
    """A victim's history as `role` may see it: if the name is withheld now or ever was, every state hides
    it, and so does every reason (free text that may spell the name any way: it is not shown at all)."""
    if sees_identities(role):
        return changes
    withheld = withheld or any((c["after"] or {}).get("name_withheld") for c in changes)
    if not withheld:
        return changes
    return [{**c, "before": _shown_state(c["before"], role, True), "after": _shown_state(c["after"], role, True),
             "reason": WITHHELD if c["reason"] else None} for c in changes]


def visible_name(role: Role, state: dict[str, Any], withheld: bool = False) -> str | None:
    """The victim's name for `role`: None when anonymous, `[withheld]` for a withheld name and a non-custodian.
    `withheld`: the person's name is withheld by another report merged with this one. Only roles that
    document read names at all."""
    require(role, "reading a victim's name")
    name = state.get("name")
    if name and (withheld or state.get("name_withheld")) and not sees_identities(role):
        return WITHHELD
    return name


def withheld_people(session: Session) -> set[str]:
    """The ids of every victim whose person's name is withheld: the reports that withhold it, and every
    report merged with one of them (the family's request covers the person, not one report)."""
    withheld = set(session.exec(select(Victim.id).where(Victim.name_withheld == True)).all())  # noqa: E712
    parents = dict(session.exec(select(Victim.id, Victim.merged_into)
                                .where(col(Victim.merged_into).is_not(None))).all())
    if not parents or not withheld:
        return withheld

    def root(victim_id: str) -> str:
        seen = {victim_id}
        while victim_id in parents and parents[victim_id] not in seen:
            victim_id = parents[victim_id]  # type: ignore[assignment]
            seen.add(victim_id)
        return victim_id

    roots = {root(w) for w in withheld}
    return withheld | roots | {v for v in parents if root(v) in roots}


def person_withheld(session: Session, victim_id: str) -> bool:
    """Whether the name of the person this victim record reports is withheld (by it or a report merged with it)."""
    ids = family(session, kept(session, victim_id))
    return session.exec(select(Victim.id).where(col(Victim.id).in_(ids), Victim.name_withheld == True)  # noqa: E712
                        ).first() is not None


# --- reading -------------------------------------------------------------------------------------------------

def _professions(column: str) -> list[str]:
    return [p for p in column.split(";") if p]


def _clear(row: Victim, refs: dict[str, str]) -> dict[str, Any]:
    """What anyone who documents may see of a victim: the clear columns (no name, no age)."""
    return {"id": row.id, "ref": row.ref, "incident_id": row.incident_id, "incident_ref": refs.get(row.incident_id),
            "anonymous": row.anonymous, "name_withheld": row.name_withheld, "sex": row.sex, "child": row.child,
            "woman": row.woman, "civilian": row.civilian, "professions": _professions(row.professions),
            "died_under_torture": row.died_under_torture, "governorate_of_death": row.governorate_of_death,
            "date_of_death": row.date_of_death, "date_documented": row.date_documented, "status": row.status,
            "merged_into": row.merged_into, "created_at": row.created_at, "updated_at": row.updated_at}


def _incident_refs(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.exec(select(Incident.id, Incident.ref).where(col(Incident.id).in_(sorted(ids)))).all()
    return dict(rows)


def family(session: Session, victim_id: str) -> list[str]:
    """The victim and every victim merged into it (directly or through another), the victim first."""
    out, todo = [victim_id], [victim_id]
    while todo:
        merged = session.exec(select(Victim.id).where(col(Victim.merged_into).in_(todo))).all()
        todo = [m for m in merged if m not in out]
        out.extend(todo)
    return out


def kept(session: Session, victim_id: str) -> str:
    """The victim a (possibly merged) victim now lives in: itself, or the end of its `merged_into` chain."""
    seen = {victim_id}
    row = session.get(Victim, victim_id)
    while row is not None and row.merged_into and row.merged_into not in seen:
        seen.add(row.merged_into)
        row = session.get(Victim, row.merged_into)
    return row.id if row is not None else victim_id


def consent_for(session: Session, victim_id: str, scope: str) -> Consent | None:
    """The family's current consent for `scope` (the latest recorded, withdrawals included) over the person:
    the victim's own records and those of every report merged with it. None: never recorded.

    Exports (issue 12) send a case to UN bodies only when this is `yes` for `un_bodies`: see `consents`.
    """
    if scope not in CONSENT_SCOPES:
        raise Invalid(f"scope: {scope!r} is not one of {', '.join(CONSENT_SCOPES)}")
    ids = family(session, kept(session, victim_id))
    seq, index = _log_position()
    return session.exec(select(Consent).join(RecordChange, col(RecordChange.record_id) == col(Consent.id))
                        .where(col(Consent.victim_id).in_(ids), Consent.scope == scope)
                        .order_by(seq.desc(), index.desc(), col(Consent.id).desc()).limit(1)).first()


def _log_position() -> tuple[Any, Any]:
    """A change's place in the custody log (its event, then its leaf in an imported batch), as sort keys.
    Both are bound by the change's commitment; a row's `at` or a change's id are not."""
    return (func.coalesce(RecordChange.event_seq, -1), func.coalesce(RecordChange.batch_index, -1))


def consents_in_log_order(session: Session, victim_ids: list[str], scope: str | None = None) -> list[Consent]:
    """The consent records of these victims, oldest first in the custody log's order (a consent changed
    more than once sits at its latest change): the last one of a victim and scope is the current one."""
    seq, index = _log_position()
    query = (select(Consent, seq, index).join(RecordChange, col(RecordChange.record_id) == col(Consent.id))
             .where(col(Consent.victim_id).in_(victim_ids)))
    if scope is not None:
        query = query.where(Consent.scope == scope)
    latest: dict[str, tuple[int, int, Consent]] = {}
    for row, position, leaf in session.exec(query).all():
        if row.id not in latest or (position, leaf) > latest[row.id][:2]:
            latest[row.id] = (position, leaf, row)
    return [c for _, _, c in sorted(latest.values(), key=lambda t: (t[0], t[1], t[2].id))]


def consents(session: Session, victim_id: str, scope: str) -> bool:
    """Whether the family consents now, for `scope` (a withdrawn or refused consent, or none: no)."""
    current = consent_for(session, victim_id, scope)
    return current is not None and current.status == "yes"


CONSENT_TEXT = ("recorded_by", "document", "note")  # free text: may name the family, so the person


def _consent_view(keys: CatalogKeys, row: Consent, hidden: bool) -> dict[str, Any]:
    """A consent record; `hidden`: its free text as a non-custodian sees it for a withheld person."""
    state = state_of(keys, KINDS["consent"], row)
    return {"id": row.id, "victim_id": row.victim_id, "scope": row.scope, "status": row.status,
            "given_on": row.given_on, "at": row.at, "by": row.by,
            **{k: (WITHHELD if hidden and state.get(k) else state.get(k)) for k in CONSENT_TEXT}}


def _show(session: Session, keys: CatalogKeys, row: Victim, role: Role, history: bool) -> dict[str, Any]:
    from archive.records.changes import history as changes_of

    refs = _incident_refs(session, {row.incident_id})
    state = state_of(keys, VICTIM, row)
    withheld = person_withheld(session, row.id)
    hidden = withheld and not sees_identities(role)
    shown = _clear(row, refs)
    shown.update({"name": visible_name(role, state, withheld), "age": state.get("age"),
                  "age_group": state.get("age_group"),
                  "governorate_of_origin": state.get("governorate_of_origin")})
    if row.merged_into:
        target = session.get(Victim, row.merged_into)
        shown["merged_into_ref"] = target.ref if target is not None else None
    ids = family(session, row.id)
    merged = session.exec(select(Victim).where(col(Victim.id).in_(ids[1:]))).all() if len(ids) > 1 else []
    shown["merged"] = [{"id": m.id, "ref": m.ref} for m in merged]
    shown["consents"] = [_consent_view(keys, c, hidden) for c in consents_in_log_order(session, ids)]
    shown["consent"] = {}
    for scope in CONSENT_SCOPES:
        current = consent_for(session, row.id, scope)
        shown["consent"][scope] = current.status if current is not None else None
    if history:
        shown["history"] = _shown_history(changes_of(session, keys, row.id), role, withheld)
    return shown


def show_victim(archive: Archive, name: str, *, role: Role, history: bool = False) -> dict[str, Any]:
    """One victim: every field (the name as `role` may see it), the family's consent per scope with every
    record of it, the reports merged into it; with `history`, every change before and after."""
    require(role, "reading a victim")
    keys = record_keys(archive, "reading a victim")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role).victims
        return _show(session, keys, find_visible(session, Victim, name, "victim", hidden), role, history)


def list_victims(archive: Archive, *, role: Role, incident: str | None = None, status: str | None = "active",
                 sex: str | None = None, child: bool | None = None, civilian: bool | None = None,
                 governorate: str | None = None, date_from: str | None = None, date_to: str | None = None,
                 names: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """Victims by date documented, from their clear columns (no key needed). Filters combine; `status`
    None lists merged reports too. With `names`, each carries its name as `role` may see it (opening the
    sealed rows needs the catalog key)."""
    require(role, "listing victims")
    keys = record_keys(archive, "listing victims' names") if names else None
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        query = (select(Victim).where(excluding(col(Victim.id), hidden.victims))
                 .order_by(col(Victim.date_documented), col(Victim.ref)))
        if incident:
            query = query.where(Victim.incident_id == find_visible(session, Incident, incident, "incident",
                                                                   hidden.incidents).id)
        if status:
            query = query.where(Victim.status == status)
        if sex:
            query = query.where(Victim.sex == sex)
        if child is not None:
            query = query.where(Victim.child == child)
        if civilian is not None:
            query = query.where(Victim.civilian == civilian)
        if governorate:
            query = query.where(Victim.governorate_of_death == governorate)
        if date_from:
            query = query.where(Victim.date_documented >= check_day(date_from, "from"))
        if date_to:
            query = query.where(Victim.date_documented <= check_day(date_to, "to"))
        if limit is not None:
            query = query.limit(limit)
        rows = session.exec(query).all()
        refs = _incident_refs(session, {r.incident_id for r in rows})
        shown = [_clear(r, refs) for r in rows]
        if keys is not None:
            withheld = set() if sees_identities(role) else withheld_people(session)
            for entry, row in zip(shown, rows, strict=True):
                entry["name"] = visible_name(role, state_of(keys, VICTIM, row), row.id in withheld)
    return shown


# --- writing -------------------------------------------------------------------------------------------------

def _incident_id(session: Session, ref: Any, hidden: Hidden = NOTHING) -> str:
    if ref in (None, ""):
        raise Invalid("incident_ref: required")
    try:
        return find_visible(session, Incident, str(ref), "incident", hidden.incidents).id
    except NotFound:
        raise Invalid(f"incident_ref: no incident {str(ref).strip()[:128]!r} (by ref or id)") from None


def _ref_free(session: Session, ref: str, victim_id: str | None = None) -> None:
    found = session.exec(select(Victim.id).where(Victim.ref == ref)).first()
    if found is not None and found != victim_id:
        raise Invalid(f"ref: a victim {ref!r} exists already")


def _consent_from_columns(victim_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The interchange's consent columns as a consent state for UN bodies (None when none is given)."""
    answer = fields.get("family_consent") or None
    if answer is None:
        if fields.get("consent_date") or fields.get("consent_recorded_by"):
            raise Invalid("family_consent: give the family's answer (yes, no, not_asked) with its date and recorder")
        return None
    return consent_state(victim_id, "un_bodies", answer, fields.get("consent_date"),
                         fields.get("consent_recorded_by"))


def add_victim(archive: Archive, fields: dict[str, Any], *, role: Role, reason: str | None = None) -> dict[str, Any]:
    """Record a victim from the interchange columns (`incident_ref`, `sex`, `civilian`, `date_documented` …);
    the consent columns record the family's consent for UN bodies. `Invalid` names the bad field; nothing is
    written then. `child` and `woman` are derived, never given."""
    require(role, "adding a victim")
    keys = record_keys(archive, "recording a victim")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        state = victim_state(vocab, fields, _incident_id(session, fields.get("incident_ref"),
                                                         hidden_in(archive, session, role)))
        victim_id = new_id("vic")
        consent = _consent_from_columns(victim_id, fields)
        _ref_free(session, state["ref"])
        put(session, keys, archive.actor, "victim", victim_id, state, change="create", reason=reason)
        if consent is not None:
            put(session, keys, archive.actor, "consent", new_id("con"), consent, change="consent", reason=reason)
        return _show(session, keys, session.get(Victim, victim_id), role, False)  # type: ignore[arg-type]


def _fields_of(session: Session, state: dict[str, Any]) -> dict[str, Any]:
    """A victim's state as request fields (the interchange columns)."""
    fields = {k: v for k, v in state.items() if k in VICTIM_FIELDS}
    incident = session.get(Incident, state["incident_id"])
    fields["incident_ref"] = incident.ref if incident is not None else state["incident_id"]
    return fields


def _active(row: Victim, doing: str) -> None:
    if row.status != "active":
        raise Invalid(f"victim {row.ref!r} was merged into another record ({row.merged_into}): {doing} that one")


def _guard_name(role: Role, old: dict[str, Any], new: dict[str, Any], changes: dict[str, Any],
                withheld: bool = False) -> None:
    """Only a custodian lifts a withheld name or gives one (an investigator never sees it).

    Any name from a non-custodian is refused, even the one held: accepting the
    right guess silently and refusing a wrong one would confirm the name.
    """
    if sees_identities(role) or not (old.get("name_withheld") or withheld):
        return
    if not new.get("name_withheld"):
        raise Forbidden("name_withheld: only a custodian may lift a withheld name")
    if "name" in changes:
        raise Forbidden("name: only a custodian may give or change a withheld name")


def edit_victim(archive: Archive, name: str, changes: dict[str, Any], *, role: Role,
                reason: str | None = None) -> dict[str, Any]:
    """Change some fields (interchange columns; None or "" clears one). An anonymous victim gets a name through
    `identify_victim`, consent through `record_consent`; a merged report is edited through the one it is in."""
    require(role, "editing a victim")
    if set(changes) & set(CONSENT_FIELDS):
        raise Invalid("family_consent: record consent with `victim consent` (it keeps each record and withdrawal)")
    keys = record_keys(archive, "editing a victim")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        hidden = hidden_in(archive, session, role)
        # held: a second edit starts from this one's result
        row = find_visible(session, Victim, name, "victim", hidden.victims, lock=True)
        _active(row, "edit")
        old = state_of(keys, VICTIM, row)
        if not old.get("name") and changes.get("name"):
            raise Invalid("name: an anonymous victim is identified with `victim identify` (it keeps why)")
        fields = {**_fields_of(session, old), **changes}
        incident_id = _incident_id(session, fields.get("incident_ref"), hidden)
        state = {**victim_state(vocab, fields, incident_id), "status": old["status"], "merged_into": old["merged_into"]}
        _guard_name(role, old, state, changes, person_withheld(session, row.id))
        _ref_free(session, state["ref"], row.id)
        if state != old:
            put(session, keys, archive.actor, "victim", row.id, state, change="edit", reason=reason)
        return _show(session, keys, row, role, False)


def identify_victim(archive: Archive, name: str, person: str, *, role: Role, reason: str,
                    withheld: bool | None = None) -> dict[str, Any]:
    """Give an anonymous victim its name, once identified (by the family, a document …); `reason` says how.
    `withheld`: whether the family asks that the name be withheld (unchanged when None)."""
    require(role, "identifying a victim")
    why = check_text(reason, "reason", 5000)
    if why is None:
        raise Invalid("reason: say how the victim was identified")
    keys = record_keys(archive, "identifying a victim")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        row = find_visible(session, Victim, name, "victim", hidden_in(archive, session, role).victims, lock=True)
        _active(row, "identify")
        old = state_of(keys, VICTIM, row)
        if old.get("name"):
            raise Invalid(f"victim {row.ref!r} is not anonymous: correct its name with `victim edit`")
        fields = {**_fields_of(session, old), "name": person}
        if withheld is not None:
            fields["name_withheld"] = withheld
        state = {**victim_state(vocab, fields, old["incident_id"]), "status": old["status"],
                 "merged_into": old["merged_into"]}
        if not state.get("name"):
            raise Invalid("name: required to identify a victim")
        put(session, keys, archive.actor, "victim", row.id, state, change="identify", reason=why)
        return _show(session, keys, row, role, False)


def _consent(archive: Archive, name: str, state_for: Any, change: str, role: Role) -> dict[str, Any]:
    require(role, "recording consent")
    keys = record_keys(archive, "recording consent")
    with transaction(archive.engine) as session:
        # The victim held: every consent write holds it first, so a withdrawal reads the consent it withdraws.
        row = find_visible(session, Victim, name, "victim", hidden_in(archive, session, role).victims, lock=True)
        _active(row, "record consent on")
        state = state_for(session, row)
        put(session, keys, archive.actor, "consent", new_id("con"), state, change=change)
        return _show(session, keys, row, role, False)


def record_consent(archive: Archive, victim: str, scope: str, answer: str, given_on: str | None,
                   recorded_by: str | None, document: str | None = None, note: str | None = None, *,
                   role: Role) -> dict[str, Any]:
    """Record the family's answer for one scope (`yes`, `no`, `not_asked`): its date, who took it, the
    document it rests on. It becomes the current consent for that scope; earlier ones stay in the record."""
    def build(_session: Session, row: Victim) -> dict[str, Any]:
        return consent_state(row.id, scope, answer, given_on, recorded_by, document, note)

    return _consent(archive, victim, build, "consent", role)


def withdraw_consent(archive: Archive, victim: str, scope: str, given_on: str, recorded_by: str | None,
                     document: str | None = None, note: str | None = None, *, role: Role) -> dict[str, Any]:
    """The family withdraws its consent for one scope (on `given_on`): a new record, the earlier ones kept."""
    def build(session: Session, row: Victim) -> dict[str, Any]:
        current = consent_for(session, row.id, scope)
        if current is None or current.status != "yes":
            raise Invalid(f"scope: victim {row.ref!r} has no consent for {scope} to withdraw")
        return consent_state(row.id, scope, "withdrawn", given_on, recorded_by, document, note)

    return _consent(archive, victim, build, "withdraw", role)


# --- one person, several reports -----------------------------------------------------------------------------

def _match_view(session: Session, keys: CatalogKeys | None, role: Role, match: VictimMatch,
                rows: dict[str, Victim], withheld: set[str]) -> dict[str, Any]:
    shown: dict[str, Any] = {"state": match.state, "score": match.score / 1000, "clues": list(match.clues),
                             "suggested_at": match.suggested_at, "decided_at": match.decided_at,
                             "decided_by": match.decided_by}
    for side, victim_id in (("a", match.a_id), ("b", match.b_id)):
        row = rows[victim_id]
        entry = {"id": row.id, "ref": row.ref, "status": row.status, "sex": row.sex,
                 "date_of_death": row.date_of_death, "governorate_of_death": row.governorate_of_death,
                 "date_documented": row.date_documented}
        if keys is not None:
            entry["name"] = visible_name(role, state_of(keys, VICTIM, row), victim_id in withheld)
        shown[side] = entry
    return shown


def _matches(session: Session, keys: CatalogKeys | None, role: Role, state: str | None,
             victim_id: str | None, limit: int | None, hidden: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Stored pairs as `role` may see them: for a non-custodian, no pair that involves a withheld person
    (left out before the limit, so neither the entries nor their number tell of one)."""
    query = select(VictimMatch).order_by(col(VictimMatch.score).desc(), col(VictimMatch.id))
    if state:
        query = query.where(VictimMatch.state == state)
    if victim_id:
        query = query.where((VictimMatch.a_id == victim_id) | (VictimMatch.b_id == victim_id))
    withheld = withheld_people(session)
    custodian = sees_identities(role)
    out: list[dict[str, Any]] = []
    for match in session.exec(query).all():
        if not custodian and (match.a_id in withheld or match.b_id in withheld):
            continue
        if match.a_id in hidden or match.b_id in hidden:  # a victim a restricted case hides from the caller
            continue
        rows = {r.id: r for r in session.exec(select(Victim).where(col(Victim.id).in_([match.a_id, match.b_id])))}
        if len(rows) < 2:
            continue
        if match.state == "candidate" and any(r.status != "active" for r in rows.values()):
            continue  # one of them was merged since: the candidate is moot
        out.append(_match_view(session, keys, role, match, rows, withheld))
        if limit is not None and len(out) >= limit:
            break
    return out


def _custodian_for(session: Session, role: Role, rows: list[Victim], doing: str) -> None:
    """`Forbidden` for a non-custodian when any of these reports is of a person whose name is withheld: a
    match on such a pair would confirm a guessed name (its clues say "same normalized name")."""
    if not sees_identities(role) and any(person_withheld(session, r.id) for r in rows):
        raise Forbidden(f"{doing} a victim whose name is withheld is for custodians only")


def _profiles(session: Session, keys: CatalogKeys, leave_out: set[str]) -> list[Profile]:
    """Every active named victim's matching profile (but those in `leave_out`), its name opened in memory (read
    as plain rows: the ORM would triple the time over 100,000 victims)."""
    from sqlalchemy import select as columns

    from archive.catalog.sealing import open_row
    from archive.records.matching import profile

    v = Victim.__table__.c  # type: ignore[attr-defined]
    query = (columns(v.id, v.incident_id, v.sex, v.date_of_death, v.governorate_of_death, v.key_version, v.sealed)
             .where(v.status == "active", v.anonymous == False))  # noqa: E712
    out: list[Profile] = []
    for victim_id, incident_id, sex, died, governorate, version, sealed in session.execute(query).all():
        if victim_id in leave_out:
            continue
        state = {"incident_id": incident_id, "sex": sex, "date_of_death": died, "governorate_of_death": governorate,
                 **open_row(keys, VICTIM.table, victim_id, version, sealed)}
        found = profile(victim_id, state)
        if found is not None:
            out.append(found)
    return out


def _insert_candidates(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert new candidate pairs; a pair another suggestion inserted meanwhile is left as it is."""
    table = VictimMatch.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    else:  # pragma: no cover - the archive runs on these two
        for start in range(0, len(rows), 5000):
            session.execute(insert(table), rows[start : start + 5000])
        return
    for start in range(0, len(rows), 5000):
        session.execute(upsert(table).on_conflict_do_nothing(index_elements=["a_id", "b_id"]),
                        rows[start : start + 5000])


def suggest_matches(archive: Archive, *, role: Role, victim: str | None = None,
                    limit: int | None = 50) -> list[dict[str, Any]]:
    """Look for reports of one person (over every active named victim, or one victim against the rest), keep
    each new pair as a candidate, and return the pending candidates, best first. A pair once suggested,
    confirmed or rejected is never suggested again. Names are opened in memory, never written.

    For a non-custodian, persons whose name is withheld take no part (`Forbidden` when asked for one): a
    probe record with a guessed name would otherwise be told whether it matches."""
    from archive.custody.log import utc_now
    from archive.records.matching import candidates

    require(role, "suggesting victim matches")
    keys = record_keys(archive, "matching victims (their names are sealed)")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role).victims
        only: list[str] | None = None
        if victim is not None:
            row = find_visible(session, Victim, victim, "victim", hidden)
            _active(row, "match")
            _custodian_for(session, role, [row], "matching")
            if row.anonymous:
                raise Invalid(f"victim {row.ref!r} is anonymous: there is no name to match")
            only = [row.id]
        leave_out = (set() if sees_identities(role) else withheld_people(session)) | hidden
        profiles = _profiles(session, keys, leave_out)
        skip = {(a, b) for a, b in session.exec(select(VictimMatch.a_id, VictimMatch.b_id)).all()}
        skip |= {(a, b) for a, b in session.exec(select(Link.a_id, Link.b_id).where(
            Link.kind == "not_same_person", Link.active == True)).all()}  # noqa: E712 - decisions a rebuild restored
        found = candidates(profiles, skip, only)
        at = utc_now()
        _insert_candidates(session, [{"a_id": a, "b_id": b, "score": s.value, "clues": list(s.clues),
                                      "state": "candidate", "suggested_at": at} for a, b, s in found])
        return _matches(session, keys, role, "candidate", only[0] if only else None, limit, hidden)


def list_matches(archive: Archive, *, role: Role, state: str | None = "candidate", victim: str | None = None,
                 names: bool = True, limit: int | None = None) -> list[dict[str, Any]]:
    """Stored pairs (pending candidates by default), best first, each side's name as `role` may see it; a
    non-custodian sees no pair involving a withheld person (`Forbidden` when asking for one by name)."""
    require(role, "listing victim matches")
    if state is not None and state not in MATCH_STATES:
        raise Invalid(f"state: {state!r} is not one of {', '.join(MATCH_STATES)}")
    keys = record_keys(archive, "listing victim matches with names") if names else None
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role).victims
        victim_id = None
        if victim:
            row = find_visible(session, Victim, victim, "victim", hidden)
            _custodian_for(session, role, [row], "listing the matches of")
            victim_id = row.id
        return _matches(session, keys, role, state, victim_id, limit, hidden)


def _pair(session: Session, a: str, b: str, hidden: frozenset[str] = frozenset()
          ) -> tuple[Victim, Victim, VictimMatch | None]:
    """The two victims, held (in id order, so two decisions on one pair never wait on each other), and their
    stored match, held too: a decision builds on both as they are once it holds them. `hidden`: victims that
    do not exist for the caller."""
    first, second = find_visible(session, Victim, a, "victim", hidden), find_visible(session, Victim, b, "victim",
                                                                                    hidden)
    if first.id == second.id:
        raise Invalid(f"victim {first.ref!r} named twice: a victim cannot be matched with itself")
    ids = pair(first.id, second.id)
    held = {i: find(session, Victim, i, "victim", lock=True) for i in ids}
    first, second = held[first.id], held[second.id]
    match = session.exec(select(VictimMatch).where(VictimMatch.a_id == ids[0], VictimMatch.b_id == ids[1])
                         .with_for_update().execution_options(populate_existing=True)).first()
    return first, second, match


def _decide(session: Session, match: VictimMatch | None, a: Victim, b: Victim, state: str, actor: str) -> None:
    from archive.custody.log import utc_now

    at = utc_now()
    if match is None:
        ids = pair(a.id, b.id)
        match = VictimMatch(a_id=ids[0], b_id=ids[1], score=0, clues=["decided without a suggestion"],
                            suggested_at=at)
    match.state, match.decided_at, match.decided_by = state, at, actor
    session.add(match)


MERGE_FILLS = ("name", "age", "age_group", "governorate_of_origin", "governorate_of_death", "date_of_death")


def _merged_state(vocab: Vocab, session: Session, keep: dict[str, Any], other: dict[str, Any],
                  withheld: bool) -> dict[str, Any]:
    """The kept victim's state with what only the other report knew: a missing field filled, professions
    together, torture if either says so, and the name withheld if either family asked (`withheld`)."""
    fields = _fields_of(session, keep)
    for name in MERGE_FILLS:
        if fields.get(name) in (None, "") and other.get(name) not in (None, ""):
            fields[name] = other[name]
    fields["professions"] = sorted(set(keep.get("professions") or []) | set(other.get("professions") or []))
    fields["died_under_torture"] = bool(keep.get("died_under_torture") or other.get("died_under_torture"))
    fields["name_withheld"] = withheld
    try:
        state = victim_state(vocab, fields, keep["incident_id"])
    except Invalid as exc:
        raise Invalid(f"the two reports disagree ({exc}): correct one with `victim edit` first") from None
    return {**state, "status": keep["status"], "merged_into": keep["merged_into"]}


def _first_logged(session: Session, victim_id: str) -> tuple[int, int]:
    """Where a record's first change sits in the custody log (which report came first; `created_at` is an
    editable column, the log's order is bound by the commitments)."""
    seq, index = _log_position()
    found = session.exec(select(seq, index).where(RecordChange.record_id == victim_id)
                         .order_by(seq, index).limit(1)).first()
    return (found[0], found[1]) if found is not None else (-1, -1)


def confirm_match(archive: Archive, a: str, b: str, *, role: Role, reason: str,
                  keep: str | None = None) -> dict[str, Any]:
    """Confirm that two victim records are one person, and merge them: the later report (or the one not
    named by `keep`) becomes `merged` into the other, which takes what only the later one knew. Both keep
    their history; the merged one's consents and links stay reachable through the kept one, and statistics
    count the person once (they count active victims only). If either family asked that the name be
    withheld, both reports withhold it. Returns the kept victim."""
    require(role, "merging victims")
    why = check_text(reason, "reason", 5000)
    if why is None:
        raise Invalid("reason: say why these reports are one person")
    keys = record_keys(archive, "merging victims")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        first, second, match = _pair(session, a, b, hidden_in(archive, session, role).victims)
        _custodian_for(session, role, [first, second], "merging")
        for row in (first, second):
            _active(row, "merge")
        if keep is None:
            kept_row, other = sorted((first, second), key=lambda r: (*_first_logged(session, r.id), r.ref))
        else:
            chosen = find(session, Victim, keep, "victim")
            if chosen.id not in (first.id, second.id):
                raise Invalid(f"keep: victim {chosen.ref!r} is neither of the pair")
            kept_row, other = (first, second) if chosen.id == first.id else (second, first)
        withheld = person_withheld(session, first.id) or person_withheld(session, second.id)
        keep_state, other_state = state_of(keys, VICTIM, kept_row), state_of(keys, VICTIM, other)
        merged = _merged_state(vocab, session, keep_state, other_state, withheld)
        put(session, keys, archive.actor, "victim", other.id, {**other_state, "status": "merged",
                                                                "merged_into": kept_row.id,
                                                                "name_withheld": withheld},
            change="merge", reason=why)
        put(session, keys, archive.actor, "victim", kept_row.id, merged, change="merge", reason=why)
        _decide(session, match, first, second, "confirmed", archive.actor)
        session.flush()
        return _show(session, keys, kept_row, role, False)


def reject_match(archive: Archive, a: str, b: str, *, role: Role, reason: str | None = None) -> dict[str, Any]:
    """Two victim records are different people: the pair is never suggested again, even in a catalog rebuilt
    from storage (the decision is a `not_same_person` link with the reason, in the custody log and the journal)."""
    require(role, "rejecting a victim match")
    why = check_text(reason, "reason", 5000)
    keys = record_keys(archive, "rejecting a victim match")
    with transaction(archive.engine) as session:
        first, second, match = _pair(session, a, b, hidden_in(archive, session, role).victims)
        _custodian_for(session, role, [first, second], "rejecting a match of")
        if match is not None and match.state == "confirmed":
            raise Invalid(f"victims {first.ref!r} and {second.ref!r} were confirmed as one person and merged")
        if match is not None and match.state == "rejected":
            raise Invalid(f"victims {first.ref!r} and {second.ref!r} were rejected as a match already")
        from archive.services.links import Target, connect

        # A link record, not a plain row: the decision is journalled, so a rebuilt catalog never suggests it again.
        ids = sorted([(first.id, first.ref), (second.id, second.ref)])
        connect(session, keys, archive.actor, "not_same_person", Target("victim", *ids[0]), Target("victim", *ids[1]),
                certainty="confirmed", note=why, reason=why)
        _decide(session, match, first, second, "rejected", archive.actor)
        return {"a": {"id": first.id, "ref": first.ref}, "b": {"id": second.id, "ref": second.ref},
                "state": "rejected"}
