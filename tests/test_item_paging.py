"""Item lists and the search paged in SQL (`limit`, `after`): the same items as unpaged, hidden ones taken out
before a page is cut, and a hidden item's id as a cursor refused word for word like an id never ingested."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.roles import Role
from archive.services.errors import Invalid
from tests.test_compartments import HIDDEN_ITEMS, VISIBLE_ITEMS, World, as_user, build_world, open_archive

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> World:
    return build_world(tmp_path_factory.mktemp("paging"), corpus)


@pytest.fixture()
def readers(world: World) -> Iterator[dict[str, Any]]:
    opened = {"custodian": open_archive(world.home), "outsider": as_user(world.home, world.outsider),
              "member": as_user(world.home, world.member)}
    yield opened
    for archive in opened.values():
        archive.close()


def walk(fetch: Callable[[str | None], tuple[list[str], str | None]]) -> list[list[str]]:
    """Every page, following each page's cursor to the end."""
    pages, after = [], None
    while True:
        ids, after = fetch(after)
        pages.append(ids)
        if after is None:
            return pages
        assert len(pages) < 20, "the cursor never ends"


def role_of(name: str) -> Role:
    return Role.CUSTODIAN if name == "custodian" else Role.INVESTIGATOR


@pytest.mark.parametrize("who", ["custodian", "outsider", "member"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_list_pages_are_the_list_cut_after_hidden_items_are_taken_out(world: World, readers: dict[str, Any],
                                                                       who: str, limit: int) -> None:
    from archive.services.items import list_items

    archive, role = readers[who], role_of(who)
    whole = [i.id for i in list_items(archive, role=role)]

    def fetch(after: str | None) -> tuple[list[str], str | None]:
        rows = [i.id for i in list_items(archive, role=role, limit=limit + 1, after=after)]
        return rows[:limit], rows[limit - 1] if len(rows) > limit else None

    pages = walk(fetch)
    assert [i for p in pages for i in p] == whole
    assert all(len(p) == limit for p in pages[:-1])  # never a short page because something was hidden
    hidden = {world.ids[k] for k in HIDDEN_ITEMS}
    assert (set(whole) & hidden == set()) == (who == "outsider")
    assert {world.ids[k] for k in VISIBLE_ITEMS} <= set(whole)


@pytest.mark.parametrize("options", [{}, {"linked": True}, {"governorate": "idlib"}])
@pytest.mark.parametrize("scan", [False, True], ids=["named", "walked"])
def test_search_pages_are_the_search_cut(readers: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                         options: dict[str, Any], scan: bool) -> None:
    from archive.services import record_search
    from archive.services.record_search import Query, search_records

    if scan:  # the walk a large match takes, row by row
        monkeypatch.setattr(record_search, "INLINE", 0)
        monkeypatch.setattr(record_search, "SCAN", 1)
    for who in ("custodian", "outsider"):
        archive, role = readers[who], role_of(who)
        whole = search_records(archive, Query(**options), role=role)

        def fetch(after: str | None, archive: Any = archive, role: Role = role,
                  whole: dict[str, Any] = whole) -> tuple[list[str], str | None]:
            found = search_records(archive, Query(**options), role=role, limit=1, after=after)
            assert found["total"] == len(whole["items"]) and found["incidents"] == whole["incidents"]
            assert found["items"] == [i for i in whole["items"] if i["id"] in {r["id"] for r in found["items"]}]
            return [i["id"] for i in found["items"]], found["next"]

        assert [i for p in walk(fetch) for i in p] == [i["id"] for i in whole["items"]]
        assert "next" not in whole and "total" not in whole  # unpaged: the answer it always was


def test_a_hidden_item_as_cursor_reads_like_one_never_ingested(world: World, readers: dict[str, Any]) -> None:
    from archive.services.items import list_items
    from archive.services.record_search import Query, search_records

    hidden = world.ids[HIDDEN_ITEMS[0]]
    calls: list[Callable[[Any, str], Any]] = [
        lambda archive, after: list_items(archive, role=Role.INVESTIGATOR, limit=2, after=after),
        lambda archive, after: search_records(archive, Query(), role=Role.INVESTIGATOR, limit=2, after=after),
        lambda archive, after: search_records(archive, Query(linked=True), role=Role.INVESTIGATOR, limit=2,
                                              after=after),
    ]
    for call in calls:
        with pytest.raises(Invalid) as refused:
            call(readers["outsider"], hidden)
        with pytest.raises(Invalid) as unknown:
            call(readers["outsider"], UNKNOWN)
        assert str(refused.value).replace(hidden, "ID") == str(unknown.value).replace(UNKNOWN, "ID")
        call(readers["member"], hidden)  # a member of the case pages on from it


def test_http_pages_follow_next(world: World) -> None:
    from tests.api_support import bearer, client, token_for

    token = token_for(world.home, "outsider-http", "investigator")
    with client(world.home) as http:
        listed = http.get("/v1/items?limit=1000", headers=bearer(token)).json()
        assert listed["next"] is None
        seen, after = [], None
        while True:
            answer = http.get("/v1/items", params={"limit": 1, **({"after": after} if after else {})},
                              headers=bearer(token)).json()
            seen += [row["id"] for row in answer["data"]]
            after = answer["next"]
            if after is None:
                break
        assert seen == [row["id"] for row in listed["data"]]
        whole = http.get("/v1/search", headers=bearer(token)).json()
        assert set(whole) == {"query", "items", "incidents"}
        paged = http.get("/v1/search", params={"limit": 1}, headers=bearer(token)).json()
        assert paged["total"] == len(whole["items"]) and paged["items"] == whole["items"][:1]
        assert (paged["next"] is None) == (len(whole["items"]) <= 1)
        bad = http.get("/v1/items", params={"limit": 1, "after": UNKNOWN}, headers=bearer(token))
        assert bad.status_code == 422 and UNKNOWN in bad.text
