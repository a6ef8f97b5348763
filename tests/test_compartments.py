"""Restricted cases: an investigator outside a case finds nothing of it, by any door; members and custodians do.

The attacker here is an investigator who knows (or guesses) ids, prefixes,
refs, hashes and filter values that only the hidden incident would match,
and reads every answer for a difference: an error message, an item count, a
statistic, a candidate, a similar match.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from PIL import Image, ImageOps
from sqlalchemy import event

from archive.roles import Role
from archive.services.errors import Forbidden, NotFound
from tests.conftest import Cli
from tests.test_links import add_incident, add_victim, ingest, open_archive

SECRET_CASE = "Operation Quiet Lantern"
INV: Final = Role.INVESTIGATOR


def as_user(home: Path, user_id: str) -> Any:
    """An Archive acting as a user id, the way the HTTP layer makes one for a caller."""
    from archive.context import Archive

    return Archive.open(home, user_id)


def add_user(home: Path, name: str, role: Role = Role.INVESTIGATOR) -> str:
    from archive.services.accounts import add_user as add

    archive = open_archive(home)
    try:
        return str(add(archive, name, role)["id"])
    finally:
        archive.close()


def custodian(home: Path, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    archive = open_archive(home)
    try:
        return fn(archive, *args, role=Role.CUSTODIAN, **kwargs)
    finally:
        archive.close()


def message(exc: pytest.ExceptionInfo[BaseException], ref: str) -> str:
    """An error message with the ref asked for blanked out: hidden and unknown must then read the same."""
    return str(exc.value).replace(ref.strip().lower(), "REF").replace(ref.strip(), "REF")


@dataclass
class World:
    cli: Cli
    ids: dict[str, str]  # file name -> item id
    files: dict[str, Path]
    case: str
    outsider: str
    member: str
    incidents: dict[str, str]  # ref -> id
    victims: dict[str, str]  # ref -> id

    @property
    def home(self) -> Path:
        return self.cli.home


def _records(home: Path, with_secret: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The documentation records: a visible incident with its victims, and (with_secret) the hidden one."""
    incidents = {"OPEN-1": add_incident(home, "OPEN-1")}
    victims = {"V-open": add_victim(home, "V-open", "OPEN-1", age=40)}
    if with_secret:
        incidents["SECRET-1"] = add_incident(home, "SECRET-1", governorate="homs", attribution="isis",
                                             type="attack_medical_facility", started_at="2022-01-01")
        victims["V-secret"] = add_victim(home, "V-secret", "SECRET-1", age=10, date_documented="2022-01-02",
                                         professions=["medical"])
        # Recorded under the visible incident, but also linked to the hidden one: hidden.
        victims["V-linked"] = add_victim(home, "V-linked", "OPEN-1", age=9)
        for n in range(4):  # with V-secret: a massacre (5 civilians), counted only for those who may see it
            victims[f"V-s{n}"] = add_victim(home, f"V-s{n}", "SECRET-1", date_documented="2022-01-03")
    return incidents, victims


def build_world(tmp_path: Path, corpus: Path) -> World:
    """Four photos: P10 linked to the hidden incident only, P12 to both, the repost of P10 (a near-duplicate
    candidate of it) and the Canon linked to the visible one; a case holding SECRET-1, one member, one outsider."""
    from archive.services.cases import add_incident as case_incident
    from archive.services.cases import add_member, create_case

    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    jpg = corpus / "media" / "jpg"
    repost = tmp_path / "repost.png"
    with Image.open(jpg / "gps/DSCN0010.jpg") as im:
        ImageOps.mirror(im.resize((320, 240))).save(repost)
    files = {"P10": jpg / "gps/DSCN0010.jpg", "P12": jpg / "gps/DSCN0012.jpg", "CANON": jpg / "Canon_40D.jpg",
             "REPOST": repost}
    by_name = ingest(cli, *files.values())
    ids = {key: by_name[path.name] for key, path in files.items()}
    incidents, victims = _records(cli.home, with_secret=True)
    cli("link", "V-linked", "--incident", "SECRET-1")
    cli("link", ids["P10"], "--incident", "SECRET-1")
    cli("link", ids["P12"], "--incident", "SECRET-1")
    cli("link", ids["P12"], "--incident", "OPEN-1")
    cli("link", ids["REPOST"], "--incident", "OPEN-1")
    cli("link", ids["CANON"], "--incident", "OPEN-1")
    outsider, member = add_user(cli.home, "outsider"), add_user(cli.home, "member")
    case = custodian(cli.home, create_case, SECRET_CASE)["id"]
    custodian(cli.home, case_incident, case, "SECRET-1")
    custodian(cli.home, add_member, case, member)
    return World(cli, ids, files, case, outsider, member, incidents, victims)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> World:
    """One world for the tests that only read (or try writes that must be refused): built once, it is slow."""
    return build_world(tmp_path_factory.mktemp("compartments"), corpus)


@pytest.fixture()
def fresh_world(tmp_path: Path, corpus: Path) -> World:
    """A world of its own, for a test that changes cases or links."""
    return build_world(tmp_path, corpus)


@pytest.fixture()
def outsider(world: World) -> Iterator[Any]:
    archive = as_user(world.home, world.outsider)
    yield archive
    archive.close()


@pytest.fixture()
def member(world: World) -> Iterator[Any]:
    archive = as_user(world.home, world.member)
    yield archive
    archive.close()


HIDDEN_ITEMS = ("P10", "P12")
VISIBLE_ITEMS = ("REPOST", "CANON")


def test_items_list_show_get_by_id_and_prefix(world: World, outsider: Any, member: Any, tmp_path: Path) -> None:
    from archive.services.items import get_item, list_items, open_original_for, show_item

    listed = {i.id for i in list_items(outsider, role=INV)}
    assert listed == {world.ids[k] for k in VISIBLE_ITEMS}
    assert {i.id for i in list_items(member, role=INV)} == set(world.ids.values())
    unknown = "0" * 8 + world.ids["P10"][8:]
    with pytest.raises(NotFound) as missing:
        show_item(outsider, unknown, role=INV)
    for key in HIDDEN_ITEMS:
        for ref in (world.ids[key], world.ids[key][:8], world.ids[key][:13].upper()):
            with pytest.raises(NotFound) as hidden:
                show_item(outsider, ref, role=INV)
            assert message(hidden, ref) == message(missing, unknown)
            with pytest.raises(NotFound) as hidden:
                open_original_for(outsider, ref, role=INV)
            assert message(hidden, ref) == message(missing, unknown)
            with pytest.raises(NotFound):
                get_item(outsider, ref, tmp_path / "out.bin", role=INV)
        assert show_item(member, world.ids[key], role=INV).id == world.ids[key]
    assert not (tmp_path / "out.bin").exists()
    # The repost's own record must not name its near-duplicate in the hidden case.
    others = {c["id"] for c in show_item(outsider, world.ids["REPOST"], role=INV).candidates}
    assert world.ids["P10"] not in others
    assert world.ids["P10"] in {c["id"] for c in show_item(member, world.ids["REPOST"], role=INV).candidates}
    # A visible item's original reads as before for the outsider.
    assert get_item(outsider, world.ids["CANON"], tmp_path / "canon.jpg", role=INV).id == world.ids["CANON"]


def test_similar_by_item_and_by_file(world: World, outsider: Any, member: Any) -> None:
    from archive.similarity import similar_to_item, similar_to_upload

    p10 = world.ids["P10"]
    assert p10 not in {m.id for m in similar_to_item(outsider, world.ids["REPOST"], role=INV)}
    assert p10 in {m.id for m in similar_to_item(member, world.ids["REPOST"], role=INV)}
    with pytest.raises(NotFound):
        similar_to_item(outsider, p10, role=INV)
    with pytest.raises(NotFound):
        similar_to_item(outsider, p10[:10], role=INV)
    data = world.files["P10"].read_bytes()  # the hidden photo itself, sent as a file to compare
    seen = {m.id for m in similar_to_upload(outsider, data, role=INV)}
    assert p10 not in seen and world.ids["REPOST"] in seen
    assert p10 in {m.id for m in similar_to_upload(member, data, role=INV)}


def test_incidents_and_victims(world: World, outsider: Any, member: Any) -> None:
    from archive.services.incidents import attribute, edit_incident, list_incidents, show_incident
    from archive.services.victims import edit_victim, list_matches, list_victims, show_victim

    assert [i["ref"] for i in list_incidents(outsider, role=INV)] == ["OPEN-1"]
    for filters in ({"governorate": "homs"}, {"party": "isis"}, {"type": "attack_medical_facility"},
                    {"date_to": "2022-12-31"}, {"massacres": True}):
        assert list_incidents(outsider, role=INV, **filters) == [], filters
        assert [i["ref"] for i in list_incidents(member, role=INV, **filters)] == ["SECRET-1"], filters
    with pytest.raises(NotFound) as missing:
        show_incident(outsider, "NO-SUCH-1", role=INV)
    for ref in ("SECRET-1", world.incidents["SECRET-1"]):
        with pytest.raises(NotFound) as hidden:
            show_incident(outsider, ref, role=INV)
        assert message(hidden, ref) == message(missing, "NO-SUCH-1")
        with pytest.raises(NotFound):
            edit_incident(outsider, ref, {"weapon": None}, role=INV)
        with pytest.raises(NotFound):
            attribute(outsider, ref, "syrian_regime", role=INV, reason="guessing")
    # OPEN-1's own numbers leave out the victim linked to the hidden incident.
    open_out, open_in = show_incident(outsider, "OPEN-1", role=INV), show_incident(member, "OPEN-1", role=INV)
    assert (open_out["victims"], open_out["civilian_victims"]) == (1, 1)
    assert (open_in["victims"], open_in["civilian_victims"]) == (2, 2)
    assert [i["civilian_victims"] for i in list_incidents(outsider, role=INV)] == [1]
    assert show_incident(member, "SECRET-1", role=INV)["massacre"]

    assert [v["ref"] for v in list_victims(outsider, role=INV, names=True)] == ["V-open"]
    assert len(list_victims(member, role=INV)) == len(world.victims)
    assert list_victims(outsider, role=INV, child=True) == []
    with pytest.raises(NotFound):
        list_victims(outsider, role=INV, incident="SECRET-1")
    with pytest.raises(NotFound) as missing:
        show_victim(outsider, "V-nobody", role=INV)
    for ref in ("V-secret", "V-linked", world.victims["V-secret"]):
        with pytest.raises(NotFound) as hidden:
            show_victim(outsider, ref, role=INV)
        assert message(hidden, ref) == message(missing, "V-nobody")
        with pytest.raises(NotFound):
            edit_victim(outsider, ref, {"sex": "female"}, role=INV)
    with pytest.raises(NotFound):
        list_matches(outsider, role=INV, victim="V-secret")
    # An outsider cannot attach a victim to the hidden incident either (as if it did not exist).
    from archive.services.errors import Invalid
    from archive.services.victims import add_victim as add

    with pytest.raises(Invalid) as refused:
        add(outsider, {"ref": "V-probe", "incident_ref": "SECRET-1", "sex": "male", "civilian": True,
                       "date_documented": "2023-12-10"}, role=INV)
    assert "no incident 'SECRET-1'" in str(refused.value)


def test_search_by_options_only_the_hidden_would_match(world: World, outsider: Any, member: Any) -> None:
    from archive.services.items import show_item
    from archive.services.record_search import Query, search_records


    def found(archive: Any, **options: Any) -> tuple[set[str], dict[str, int]]:
        result = search_records(archive, Query(**options), role=INV)
        return {i["id"] for i in result["items"]}, {i["ref"]: i["items"] for i in result["incidents"]}

    sha = {k: show_item(member, world.ids[k], role=INV).sha256 for k in HIDDEN_ITEMS}
    for options in ({"governorate": "homs"}, {"party": "isis"}, {"type_": "attack_medical_facility"},
                    {"date_to": "2022-12-31"}, {"category": "child"}, {"category": "medical"},
                    {"sha256": sha["P10"]}, {"sha256": sha["P12"]}):
        assert found(outsider, **options) == (set(), {}), options
        assert found(member, **options) != (set(), {}), options
    # Every item the outsider finds is visible; OPEN-1 counts only the visible items linked to it.
    items, incidents = found(outsider, linked=True)
    assert items == {world.ids[k] for k in VISIBLE_ITEMS}
    assert found(outsider)[1] == {"OPEN-1": 2}
    assert found(member)[1] == {"OPEN-1": 3, "SECRET-1": 2}
    items, _ = found(outsider, linked=False)
    assert not items & {world.ids[k] for k in HIDDEN_ITEMS}
    with pytest.raises(NotFound):
        search_records(outsider, Query(similar_to=world.ids["P10"]), role=INV)
    items, _ = found(outsider, similar_to=world.ids["REPOST"])
    assert world.ids["P10"] not in items
    assert world.ids["P10"] in found(member, similar_to=world.ids["REPOST"])[0]


def test_links_and_candidates(world: World, outsider: Any, member: Any) -> None:
    from archive.services.links import link, links_of, list_candidates, show_link, unlink

    names = {entry["b"]["name"] for entry in links_of(outsider, "OPEN-1", role=INV)["links"]} | {
        entry["a"]["name"] for entry in links_of(outsider, "OPEN-1", role=INV)["links"]}
    assert world.ids["P12"] not in names and "V-linked" not in names
    assert len(links_of(member, "OPEN-1", role=INV)["links"]) == 3
    assert len(links_of(outsider, "OPEN-1", role=INV)["links"]) == 2
    with pytest.raises(NotFound) as missing:
        links_of(outsider, "NOTHING-AT-ALL", role=INV)
    for ref in ("SECRET-1", "V-secret", world.ids["P10"], world.ids["P12"][:9]):
        with pytest.raises(NotFound) as hidden:
            links_of(outsider, ref, role=INV)
        assert message(hidden, ref) == message(missing, "NOTHING-AT-ALL")
    hidden_link = links_of(member, "SECRET-1", role=INV)["links"][0]["id"]
    with pytest.raises(NotFound) as gone:
        show_link(outsider, hidden_link, role=INV)
    with pytest.raises(NotFound) as never:
        show_link(outsider, "lnk-0000000000000000", role=INV)
    assert message(gone, hidden_link) == message(never, "lnk-0000000000000000")
    with pytest.raises(NotFound):
        unlink(outsider, hidden_link, role=INV)
    with pytest.raises(NotFound):
        link(outsider, world.ids["CANON"], "SECRET-1", role=INV)
    with pytest.raises(NotFound):
        link(outsider, world.ids["P10"], "OPEN-1", role=INV)
    pair = {world.ids["P10"], world.ids["REPOST"]}
    assert not [c for c in list_candidates(outsider, role=INV) if {c["item_id"], c["other_id"]} == pair]
    assert [c for c in list_candidates(member, role=INV) if {c["item_id"], c["other_id"]} == pair]
    show_link(member, hidden_link, role=INV)


def _all_stats(archive: Any, role: Role) -> list[dict[str, Any]]:
    from archive.services.stats import DATES, DIMENSIONS, statistics

    return [statistics(archive, role=role, by=by, date=date) for by in DIMENSIONS for date in DATES] + [
        statistics(archive, role=role, by="party", date_from="2022-01-01", date_to="2022-12-31")]


def custodian_stats(home: Path) -> list[dict[str, Any]]:
    archive = open_archive(home)
    try:
        return _all_stats(archive, Role.CUSTODIAN)
    finally:
        archive.close()


def test_statistics_are_those_of_an_archive_without_the_case(world: World, outsider: Any, member: Any,
                                                            tmp_path: Path) -> None:
    """The outsider's numbers equal those of an archive that never held the case: no count tells of it."""
    control = Cli(tmp_path / "control")
    control("init", "--operator", "tester")
    _records(control.home, with_secret=False)
    expected = custodian_stats(control.home)
    assert _all_stats(outsider, Role.INVESTIGATOR) == expected
    full = custodian_stats(world.home)
    assert _all_stats(member, Role.INVESTIGATOR) == full != expected
    assert full[0]["total"]["massacres"] == 1 and expected[0]["total"]["massacres"] == 0


def test_membership_and_case_changes_take_effect(fresh_world: World) -> None:
    from archive.services.cases import add_member, remove_incident, remove_member
    from archive.services.items import list_items
    from archive.services.links import unlink

    world = fresh_world

    def sees(user: str) -> set[str]:
        archive = as_user(world.home, user)
        try:
            return {i.id for i in list_items(archive, role=INV)}
        finally:
            archive.close()

    everything = set(world.ids.values())
    assert sees(world.member) == everything
    custodian(world.home, remove_member, world.case, world.member)
    assert sees(world.member) == sees(world.outsider) != everything
    custodian(world.home, add_member, world.case, "outsider")  # by name
    assert sees(world.outsider) == everything
    custodian(world.home, remove_member, world.case, world.outsider)
    # A second case holding the same incident: membership of one is not enough (the most restrictive wins).
    from archive.services.cases import add_incident, create_case

    other = custodian(world.home, create_case, "Second case")["id"]
    custodian(world.home, add_incident, other, "SECRET-1")
    custodian(world.home, add_member, world.case, world.member)
    assert sees(world.member) != everything
    custodian(world.home, add_member, other, world.member)
    assert sees(world.member) == everything
    # An unlinked link hides nothing: P10 out of the hidden incident is an ordinary item again.
    custodian(world.home, unlink, world.ids["P10"], "SECRET-1")
    assert world.ids["P10"] in sees(world.outsider) and world.ids["P12"] not in sees(world.outsider)
    # Out of every case, the incident and all of its things are visible to every investigator.
    custodian(world.home, remove_incident, world.case, "SECRET-1")
    custodian(world.home, remove_incident, other, world.incidents["SECRET-1"])
    assert sees(world.outsider) == everything


def test_roles_and_the_custodian(world: World) -> None:
    from archive.services.cases import add_member, create_case, list_cases
    from archive.services.incidents import list_incidents
    from archive.services.items import list_items, show_item
    from archive.services.record_search import Query, search_records
    from archive.services.stats import statistics

    archive = open_archive(world.home)
    try:
        assert {i.id for i in list_items(archive)} == set(world.ids.values())  # the CLI's default: custodian
        assert "SECRET-1" in {i["ref"] for i in list_incidents(archive, role=Role.CUSTODIAN)}
    finally:
        archive.close()
    contributor = as_user(world.home, add_user(world.home, "field", Role.CONTRIBUTOR))
    try:
        calls: list[Callable[[], Any]] = [
                     lambda: list_items(contributor, role=Role.CONTRIBUTOR),
                     lambda: show_item(contributor, world.ids["CANON"], role=Role.CONTRIBUTOR),
                     lambda: search_records(contributor, Query(), role=Role.CONTRIBUTOR),
                     lambda: statistics(contributor, role=Role.CONTRIBUTOR)]
        for call in calls:
            with pytest.raises(Forbidden):
                call()
    finally:
        contributor.close()
    outsider = as_user(world.home, world.outsider)
    try:
        for call in (lambda: create_case(outsider, "mine", role=Role.INVESTIGATOR),
                     lambda: add_member(outsider, world.case, world.outsider, role=Role.INVESTIGATOR),
                     lambda: list_cases(outsider, role=Role.INVESTIGATOR)):
            with pytest.raises(Forbidden):
                call()
    finally:
        outsider.close()


def test_cases_cli_events_sealed_name_and_rotation(fresh_world: World) -> None:
    """Every case change is a custody event carrying ids only; the name is nowhere in clear; a catalog key
    rotation re-seals it and its lookup."""
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event

    world = fresh_world
    cli = world.cli
    listed = cli.json_lines("cases", "list")
    assert [(c["id"], c["name"]) for c in listed] == [(world.case, SECRET_CASE)]
    assert listed[0]["members"] == [world.member]
    assert listed[0]["incidents"] == [{"id": world.incidents["SECRET-1"], "ref": "SECRET-1"}]
    assert cli.json("cases", "member", SECRET_CASE, "outsider")["changed"]
    assert not cli.json("cases", "member", world.case, world.outsider)["changed"]
    assert cli.json("cases", "member", world.case, "outsider", "--remove")["changed"]
    assert cli.json("cases", "incident", world.case, "OPEN-1")["in_case"]
    assert not cli.json("cases", "incident", world.case, "OPEN-1", "--remove")["in_case"]
    code, _, err = cli("cases", "add", SECRET_CASE, expect=2)
    assert "exists already" in err
    code, _, err = cli("cases", "member", "no such case", "outsider", expect=2)
    assert "no case" in err
    code, _, err = cli("cases", "incident", world.case, "NO-SUCH", expect=2)
    assert "no incident" in err

    archive = open_archive(world.home)
    try:
        with Session(archive.engine) as session:
            events = session.exec(select(Event).where(col(Event.event_type).startswith("case "))
                                  .order_by(col(Event.seq))).all()
    finally:
        archive.close()
    assert [e.event_type for e in events] == [
        "case created", "case incident added", "case member added", "case member added", "case member removed",
        "case incident added", "case incident removed"]
    for e in events:
        text = json.dumps([e.details, e.objects])
        assert "Lantern" not in text and "outsider" not in text and "member" not in json.dumps(e.objects)
        assert e.details["case"] == world.case
    raw = b"".join(p.read_bytes() for p in world.home.rglob("*") if p.is_file())
    assert b"Lantern" not in raw and "Lantern".encode("utf-16-le") not in raw
    cli("log", "verify")

    rotated = cli.json("keys", "rotate-catalog")
    assert rotated["resealed"]["cases"] == 1
    assert cli.json_lines("cases", "list")[0]["name"] == SECRET_CASE
    assert cli.json("cases", "member", SECRET_CASE, "outsider")["changed"]  # found by its re-keyed lookup


def test_hidden_for_is_a_few_queries_cached_per_session(world: World) -> None:
    from sqlmodel import Session

    from archive.records.compartments import NOTHING, hidden_for

    archive = open_archive(world.home)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    try:
        event.listen(archive.engine, "before_cursor_execute", count)
        with Session(archive.engine) as session:
            hidden = hidden_for(session, world.outsider, Role.INVESTIGATOR)
            first = len(statements)
            assert hidden_for(session, world.outsider, Role.INVESTIGATOR) is hidden
            assert len(statements) == first  # cached on the session
            assert hidden_for(session, world.member, Role.INVESTIGATOR) == NOTHING
            assert hidden_for(session, world.outsider, Role.CUSTODIAN) == NOTHING
        event.remove(archive.engine, "before_cursor_execute", count)
    finally:
        archive.close()
    assert first <= 5, statements
    assert hidden.incidents == {world.incidents["SECRET-1"]}
    assert hidden.items == {world.ids["P10"], world.ids["P12"]}
    assert hidden.victims == {v for k, v in world.victims.items() if k != "V-open"}


def test_on_each_database(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL (ids inline, subqueries, the statistics' CTE) on SQLite and PostgreSQL, records only."""
    from archive.services.cases import add_incident as case_incident
    from archive.services.cases import create_case
    from archive.services.incidents import list_incidents
    from archive.services.victims import confirm_match, list_victims, show_victim

    control = Cli(tmp_path / "control")  # its own embedded catalog
    monkeypatch.delenv("EVIDENCE_DATABASE_URL", raising=False)
    control("init", "--operator", "tester")
    _records(control.home, with_secret=False)
    expected = custodian_stats(control.home)
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    _records(cli.home, with_secret=True)
    cli("link", "V-linked", "--incident", "SECRET-1")
    # A report recorded under the visible incident, found to be the same person as a hidden victim: hidden too.
    add_victim(cli.home, "V-dup", "OPEN-1", age=10, name="Omar")
    custodian(cli.home, confirm_match, "V-secret", "V-dup", keep="V-secret", reason="the same boy, two reports")
    outsider = add_user(cli.home, "outsider")
    case = custodian(cli.home, create_case, SECRET_CASE)["id"]
    custodian(cli.home, case_incident, case, "SECRET-1")
    archive = as_user(cli.home, outsider)
    try:
        assert _all_stats(archive, Role.INVESTIGATOR) == expected
        assert [v["ref"] for v in list_victims(archive, role=INV, status=None)] == ["V-open"]
        assert [i["ref"] for i in list_incidents(archive, role=INV)] == ["OPEN-1"]
        with pytest.raises(NotFound):
            show_victim(archive, "V-dup", role=INV)
    finally:
        archive.close()


def test_a_prefix_a_hidden_item_shares_is_neither_ambiguous_nor_found(world: World,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefixes as a guesser uses them: one a hidden item shares with a visible one names the visible one
    (not "ambiguous", which would tell of a second item), one only hidden items match is not found. Random ids
    rarely share 8 characters, so the shortest prefix is lowered to 0 here: "" is every item's prefix."""
    from sqlmodel import Session

    from archive.services import items

    monkeypatch.setattr(items, "MIN_PREFIX", 0)
    archive = open_archive(world.home)
    try:
        with Session(archive.engine) as session:
            everything = frozenset(world.ids.values())
            with pytest.raises(items.Ambiguous):
                items.resolve_item(session, "")
            assert items.resolve_item(session, "", everything - {world.ids["CANON"]}).id == world.ids["CANON"]
            with pytest.raises(NotFound) as hidden:
                items.resolve_item(session, "", everything)
            assert str(hidden.value) == "no item ''"
    finally:
        archive.close()
