"""The statistics page: the numbers of /v1/stats (same service, same filters) in real tables, a chart's data
beside them that says the same, a change after a new victim, and no page for a contributor or an auditor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import bearer, token_for
from tests.test_links import add_incident, add_victim
from tests.web_support import signed_in, web_client, web_home

COLUMNS = ("civilians", "children", "women", "torture", "medical", "media", "civil_defence", "massacres",
           "facility_attacks")


class Tables(HTMLParser):
    """Every `<table id>` of a page: its rows as (row header, {data-column: number}), and the JSON blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, dict[str, int]]]] = {}
        self.json: dict[str, Any] = {}
        self.scripts: list[dict[str, str | None]] = []
        self._table: str | None = None
        self._row: tuple[str, dict[str, int]] | None = None
        self._cell: tuple[str, str] | None = None  # (kind: th | column name, text so far)
        self._json: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
            if found.get("type") == "application/json":
                self._json = (str(found.get("id")), "")
        elif tag == "table" and found.get("id"):
            self._table = str(found["id"])
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = ("", {})
        elif tag == "th" and self._row is not None:
            self._cell = ("th", "")
        elif tag == "td" and self._row is not None and found.get("data-column"):
            self._cell = (str(found["data-column"]), "")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell = (self._cell[0], self._cell[1] + data)
        if self._json is not None:
            self._json = (self._json[0], self._json[1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._json is not None:
            self.json[self._json[0]] = json.loads(self._json[1])
            self._json = None
        elif tag in ("th", "td") and self._cell is not None and self._row is not None:
            kind, text = self._cell
            if kind == "th":
                if not self._row[0]:
                    self._row = (text.strip(), self._row[1])
            else:
                self._row[1][kind] = int(text.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            if self._row[1]:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


def parse(html: str) -> Tables:
    tables = Tables()
    tables.feed(html)
    return tables


class Site:
    """A documented home, a token for /v1/stats, a web client signed in as an investigator."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.token = token_for(home, "stats-api", "investigator")
        self.manager = web_client(home)
        self.client = self.manager.__enter__()
        signed_in(self.client, "investigator")

    def api(self, by: str, **params: str) -> dict[str, Any]:
        answer = self.client.get("/v1/stats", params={"by": by, **params}, headers=bearer(self.token))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    home = web_home(tmp_path)
    add_incident(home, "IDL-1")
    add_incident(home, "HMS-1", governorate="homs", started_at="2024-01-03", attribution="isis")
    add_victim(home, "V-1", "IDL-1", governorate_of_death="idlib")
    add_victim(home, "V-2", "IDL-1", sex="female", date_documented="2023-12-11")
    add_victim(home, "V-3", "HMS-1", date_documented="2024-01-04", governorate_of_death="homs")
    site = Site(home)
    try:
        yield site
    finally:
        site.manager.__exit__(None, None, None)


# The vocabulary's labels (English, and the Arabic of records.po) of the keys these tests count under.
LABELS = {"syrian_regime": "Syrian regime forces (army, security, local militias, Iranian militias)",
          "isis": "ISIS (the so-called Islamic State)", "idlib": "Idlib", "homs": "Homs", "aleppo": "Aleppo"}
ARABIC = {"syrian_regime": "قوات النظام السوري (الجيش والأمن والميليشيات المحلية والميليشيات الإيرانية)",
          "isis": "تنظيم داعش (ما يسمى الدولة الإسلامية)", "idlib": "إدلب", "homs": "حمص", "aleppo": "حلب"}


def shown(by: str, key: str | None, unknown: str = "(unknown)", labels: dict[str, str] = LABELS) -> str:
    """A row's header as the page shows it: the month as is, a vocabulary key by its label."""
    if key is None:
        return unknown
    return key if by == "month" else " + ".join(labels[part] for part in key.split("+"))


def expected(result: dict[str, Any], unknown: str = "(unknown)") -> list[tuple[str, dict[str, int]]]:
    """The rows /v1/stats gives, as the page's table should show them (rows, groups, then the total)."""
    by = result["by"]
    rows = [(shown(by, row[by], unknown), {c: row[c] for c in COLUMNS}) for row in result["rows"]]
    names = {"main": "Main parties", "other": "Other parties"}
    rows += [(names[g["group"]], {c: g[c] for c in COLUMNS}) for g in result["groups"]]
    return [*rows, ("Total", {c: result["total"][c] for c in COLUMNS})]


def test_the_tables_are_the_numbers_of_v1_stats(site: Site) -> None:
    page = site.client.get("/stats")
    assert page.status_code == 200, page.text
    tables = parse(page.text)
    for by in ("month", "party", "governorate"):
        result = site.api(by)
        assert tables.tables[f"table-{by}"] == expected(result), by
    month = dict(tables.tables["table-month"])
    assert month["2023-12"]["civilians"] == 2 and month["2024-01"]["civilians"] == 1
    assert month["2023-12"]["women"] == 1
    party = dict(tables.tables["table-party"])
    assert party[LABELS["syrian_regime"]]["civilians"] == 2 and party[LABELS["isis"]]["civilians"] == 1
    assert party["Total"]["civilians"] == 3
    assert "syrian_regime" not in dict(tables.tables["table-party"]) and ">idlib<" not in page.text  # labels, not keys
    assert f'title="syrian_regime">{LABELS["syrian_regime"]}</bdi>' in page.text  # the key kept for who needs it
    # each table has its headers as a screen reader needs them
    assert page.text.count('<th scope="col">Month</th>') == 1 and 'scope="row"' in page.text


def test_the_chart_data_says_what_the_tables_say(site: Site) -> None:
    page = site.client.get("/stats")
    tables = parse(page.text)
    data = tables.json["stats-data"]
    for by in ("month", "party", "governorate"):
        result = site.api(by)
        chart = data["charts"][by]
        assert chart["labels"] == [shown(by, r[by]) for r in result["rows"]]
        for key in ("civilians", "children", "women"):
            assert chart["series"][key] == [r[key] for r in result["rows"]]
    assert data["series"]["civilians"] == "Civilians"
    # the chart is drawn by our script from the JSON block (no inline script), hidden from assistive technology
    for script in tables.scripts:
        assert script.get("src") or script.get("type") == "application/json", script
    assert {s.get("src") for s in tables.scripts} >= {"/static/vendor/chart.umd.js", "/static/stats.js"}
    assert re.search(r'<figure class="stats-chart" aria-hidden="true">\s*<canvas id="chart-month"', page.text)
    assert "Content-Security-Policy" in page.headers and "'unsafe-inline'" not in page.headers[
        "Content-Security-Policy"]


def test_the_numbers_change_after_a_new_incident_and_victim(site: Site) -> None:
    before = dict(parse(site.client.get("/stats").text).tables["table-governorate"])
    assert "Aleppo" not in before
    add_incident(site.home, "ALP-1", governorate="aleppo", started_at="2024-02-01")
    add_victim(site.home, "V-4", "ALP-1", date_documented="2024-02-02", governorate_of_death="aleppo")
    after = parse(site.client.get("/stats").text)
    governorate = dict(after.tables["table-governorate"])
    assert governorate["Aleppo"]["civilians"] == 1
    assert governorate["Total"]["civilians"] == before["Total"]["civilians"] + 1
    assert dict(after.tables["table-month"])["2024-02"]["civilians"] == 1
    assert after.tables["table-governorate"] == expected(site.api("governorate"))
    labels = after.json["stats-data"]["charts"]["governorate"]["labels"]
    assert "Aleppo" in labels and "aleppo" not in labels


def test_the_filters_are_those_of_v1_stats(site: Site) -> None:
    page = site.client.get("/stats", params={"from": "2024-01-01", "to": "2024-12-31", "date": "documented"})
    assert page.status_code == 200
    tables = parse(page.text).tables
    result = site.api("month", **{"from": "2024-01-01", "to": "2024-12-31"})
    assert tables["table-month"] == expected(result)
    assert dict(tables["table-month"])["Total"]["civilians"] == 1
    assert "2023-12" not in dict(tables["table-month"])
    assert 'value="2024-01-01"' in page.text  # the form keeps what was asked
    death = parse(site.client.get("/stats", params={"date": "death"}).text)
    assert death.tables.get("table-party") in (None, []) or dict(death.tables["table-party"])["Total"] == {
        c: site.api("party", date="death")["total"][c] for c in COLUMNS}
    assert "Civilian victims without a date of death, not counted: 3" in site.client.get(
        "/stats", params={"date": "death"}).text


def test_a_bad_period_is_said_beside_its_field(site: Site) -> None:
    page = site.client.get("/stats", params={"from": "2024-02-30"})
    assert page.status_code == 422
    assert re.search(r'id="stats-from"[^>]*aria-invalid="true"', page.text)
    assert 'id="stats-from-error"' in page.text and "2024-02-30" in page.text
    assert "table-month" not in page.text
    reversed_period = site.client.get("/stats", params={"from": "2024-03-01", "to": "2024-01-01"})
    assert reversed_period.status_code == 422 and 'id="stats-from-error"' in reversed_period.text
    both = site.client.get("/stats", params={"from": "bad", "to": "2024-13-01", "date": "birth"},
                           headers={"Accept-Language": "ar"})
    assert both.status_code == 422
    for name in ("from", "to", "date"):  # every problem at once, each beside its field, in Arabic
        assert re.search(rf'id="stats-{name}"[^>]*aria-invalid="true"', both.text), name
    errors = dict(re.findall(r'<p class="field-error" id="stats-(\w+)-error" dir="auto">([^<]+)</p>', both.text))
    assert errors == {"from": "هذا ليس تاريخاً صحيحاً: اكتبه بالصيغة YYYY-MM-DD، مثل 2024-03-15.",
                      "to": "هذا ليس تاريخاً صحيحاً: اكتبه بالصيغة YYYY-MM-DD، مثل 2024-03-15.",
                      "date": "اختر تاريخ الوفاة أو تاريخ التوثيق."}, errors


@pytest.mark.parametrize("role", ["contributor", "auditor"])
def test_no_statistics_page_for_contributors_and_auditors(tmp_path: Path, role: str) -> None:
    home = web_home(tmp_path)
    add_incident(home, "IDL-1")
    add_victim(home, "V-1", "IDL-1")
    with web_client(home) as client:
        signed_in(client, role)
        page = client.get("/stats")
        assert page.status_code == 403
        assert "table-month" not in page.text and "stats-data" not in page.text
        assert 'href="/stats"' not in page.text  # nor a link to it in the navigation


def test_signed_out_goes_to_sign_in(tmp_path: Path) -> None:
    with web_client(web_home(tmp_path)) as client:
        page = client.get("/stats?from=2024-01-01", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=")


def test_the_arabic_page(site: Site) -> None:
    page = site.client.get("/stats", headers={"Accept-Language": "ar"})
    assert page.status_code == 200
    assert '<html lang="ar" dir="rtl">' in page.text
    assert "الضحايا المدنيون حسب الشهر" in page.text and "Civilian deaths by month" not in page.text
    tables = parse(page.text)
    assert tables.json["stats-data"]["series"]["civilians"] == "المدنيون"
    assert dict(tables.tables["table-month"])["المجموع"]["civilians"] == 3
    party, governorate = dict(tables.tables["table-party"]), dict(tables.tables["table-governorate"])
    assert party[ARABIC["syrian_regime"]]["civilians"] == 2 and party[ARABIC["isis"]]["civilians"] == 1
    assert governorate[ARABIC["homs"]]["civilians"] == 1 and governorate[ARABIC["idlib"]]["civilians"] == 1
    assert not {"syrian_regime", "isis", "idlib", "homs"} & (party.keys() | governorate.keys())
    charts = tables.json["stats-data"]["charts"]
    assert ARABIC["homs"] in charts["governorate"]["labels"] and "homs" not in charts["governorate"]["labels"]
    assert ARABIC["isis"] in charts["party"]["labels"]
    # the numbers under the Arabic labels are still those of /v1/stats
    for by in ("party", "governorate"):
        result = site.api(by)
        rows = [(shown(by, r[by], "(غير معروف)", ARABIC), {c: r[c] for c in COLUMNS}) for r in result["rows"]]
        assert tables.tables[f"table-{by}"][: len(rows)] == rows, by


def test_each_landmark_has_its_own_name(site: Site) -> None:
    """axe `landmark-unique`: no two regions named alike (the sections are not landmarks, the tables' are)."""
    page = site.client.get("/stats").text
    assert not re.search(r"<section[^>]*aria-label", page)
    named = re.findall(r'role="region" aria-labelledby="([^"]+)"', page)
    names = [re.search(rf'id="{ref}">(.*?)</caption>', page, re.S) for ref in named]
    texts = [re.sub(r"<[^>]+>", "", m.group(1)).strip() for m in names if m]
    assert len(texts) == 3 and len(set(texts)) == 3, texts
