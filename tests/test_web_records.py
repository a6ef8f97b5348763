"""The incident, victim and source pages, attacked as a browser would: forms that write through the services and
show the result (and its custody events), validation beside the field with nothing written, CSRF, a witness's
identity behind a custodian's confirmation (and recorded), markup in names and narratives, restricted cases, and
Arabic pages with names isolated in `<bdi>`."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.web_support import csrf_of, signed_in, web_client, web_home

XSS_NARRATIVE = "<script>alert('narrative')</script> then \"><img src=x onerror=alert(1)>"
XSS_NAME = "\"><img src=x onerror=alert(2)>"
MIXED_NAME = "محمد Al-Hamwi الحموي"
WITNESS_NAME = "Yusuf Tamer Khatib"
WITNESS_PHONE = "+963 944 512 337"
INCIDENT = {"ref": "INC-W1", "type": "killing", "started_at": "2023-12-09T14:30", "governorate": "idlib",
            "attribution": ["syrian_regime"], "place": "Maarrat al-Numan", "narrative": "Shelling of the market."}


@pytest.fixture()
def web(tmp_path: Path) -> Iterator[Any]:
    with web_client(web_home(tmp_path)) as test_client:
        yield test_client


def archive_of(web: Any) -> Any:
    return web.app.state.runtime.archive("archive")


def events(web: Any, **where: Any) -> list[Any]:
    """The custody events, oldest first, whose details hold every `where` pair (`event_type`, `actor` on the row)."""
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event

    with Session(archive_of(web).engine) as session:
        rows = list(session.exec(select(Event).order_by(col(Event.seq))).all())
    out = []
    for row in rows:
        row_fields = {"event_type": row.event_type, "actor": row.actor}
        if all((row_fields[k] if k in row_fields else (row.details or {}).get(k)) == v for k, v in where.items()):
            out.append(row)
    return out


def post(web: Any, path: str, data: dict[str, Any], page: str | None = None) -> Any:
    """POST a form the way its page would (the page's CSRF token in the `csrf` field)."""
    token = csrf_of(web.get(page or "/incidents").text)
    return web.post(path, data={"csrf": token, **data}, follow_redirects=False)


def field_error(page: str, form: str, name: str) -> str | None:
    """The message shown beside one field (`err-FORM-NAME`), unescaped; None when there is none."""
    found = re.search(rf'<p class="field-error" id="err-{form}-{name}"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else None


def make_incident(web: Any, **fields: Any) -> str:
    answer = post(web, "/incidents", {**INCIDENT, **fields}, "/incidents/new")
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def test_an_incident_is_created_edited_attributed_and_linked_through_its_forms(web: Any) -> None:
    caller = signed_in(web, "investigator")
    page = make_incident(web, narrative=XSS_NARRATIVE)
    incident_id = page.rsplit("/", 1)[1]
    shown = web.get(page).text
    assert "INC-W1" in shown and "Killing" in shown and "Idlib" in shown
    assert "<script>alert" not in shown and "<img src=x" not in shown  # markup typed is text
    assert html.escape(XSS_NARRATIVE, quote=False) in shown.replace("&#34;", '"').replace("&#39;", "'")
    assert events(web, event_type="creation", record=incident_id, actor=caller.user_id)

    edited = post(web, page, {**INCIDENT, "attribution": [], "place": "Kafr Nabl",
                              "reason": "a second witness named the village"}, page + "/edit")
    assert edited.status_code == 303 and edited.headers["location"] == page
    shown = web.get(page).text
    assert "Kafr Nabl" in shown and "Maarrat al-Numan" not in shown
    assert "a second witness named the village" in shown  # the history keeps why

    attributed = post(web, page + "/attributions", {"parties": ["syrian_regime", "russian_forces"],
                                                    "reason": "the munition remnants", "evidence": "SRC-1"}, page)
    assert attributed.status_code == 303
    shown = web.get(page).text
    history = shown.split('id="attributions-title"')[1].split("</table>")[0]
    assert history.count("<tr>") == 3  # the header, the first attribution, the joint one
    assert "Russian forces" in history and "Joint" in history and "the munition remnants" in history
    assert caller.user_id in history and "first attribution" in history
    assert len(events(web, event_type="metadata modification", record=incident_id, change="attribute")) == 1

    victim = post(web, "/victims", {"ref": "V-W1", "incident_ref": "INC-W1", "name": "Rami Saleh", "sex": "male",
                                    "civilian": "true", "date_documented": "2023-12-10"}, "/victims/new")
    assert victim.status_code == 303, victim.text
    source = post(web, "/sources", {"ref": "SRC-W1", "kind": "filmer", "alias": "Kestrel"}, "/sources/new")
    assert source.status_code == 303, source.text
    for link_type, target in (("source", "SRC-W1"), ("victim", "V-W1")):
        linked = post(web, page + "/links", {"link_type": link_type, "target": target, "certainty": "confirmed",
                                             "note": f"{link_type} note"}, page)
        assert linked.status_code == 303, linked.text
    shown = web.get(page).text
    sources = shown.split('id="sources-title"')[1].split("</section>")[0]
    assert "SRC-W1" in sources and "source note" in sources and "Confirmed" in sources
    victims = shown.split('id="victims-title"')[1].split("</section>")[0]
    assert "Rami Saleh" in victims and victim.headers["location"] in victims
    assert len(events(web, change="link", record_kind="link")) == 2


def test_an_item_is_linked_to_an_incident_and_the_incident_page_links_to_the_item(web: Any, corpus: Path) -> None:
    home = Path(archive_of(web).settings.home)
    reports = Cli(home).json_lines("ingest", str(corpus / "media/jpg/gps/DSCN0010.jpg"))
    item_id = reports[0]["id"]
    signed_in(web, "investigator")
    page = make_incident(web)
    wrong = post(web, page + "/links", {"link_type": "item", "target": "0123456789abcdef"}, page)
    assert wrong.status_code == 422 and field_error(wrong.text, "link", "target")
    linked = post(web, page + "/links", {"link_type": "item", "target": item_id, "note": "the market, filmed"}, page)
    assert linked.status_code == 303, linked.text
    items = web.get(page).text.split('id="items-title"')[1].split("</section>")[0]
    assert f'href="/items/{item_id}"' in items and "the market, filmed" in items
    assert events(web, change="link", record_kind="link")[0].item_id == item_id  # in the item's timeline


def test_a_bad_value_is_shown_beside_its_field_with_what_was_typed_and_nothing_is_written(web: Any) -> None:
    signed_in(web, "investigator")
    before = len(events(web))
    answer = post(web, "/incidents", {**INCIDENT, "started_at": "2023-02-30", "place": "Saraqib"}, "/incidents/new")
    assert answer.status_code == 422
    assert "not a real date" in (field_error(answer.text, "incident", "started_at") or "")
    assert field_error(answer.text, "incident", "ref") is None
    assert 'value="2023-02-30"' in answer.text and 'value="Saraqib"' in answer.text  # kept as typed
    assert 'aria-invalid="true"' in answer.text
    no_party = post(web, "/incidents", {**INCIDENT, "attribution": []}, "/incidents/new")
    assert no_party.status_code == 422 and field_error(no_party.text, "incident", "attribution")
    assert len(events(web)) == before
    assert "INC-W1" not in web.get("/incidents").text

    page = make_incident(web)
    unexplained = post(web, page, {**INCIDENT, "attribution": [], "place": "Saraqib", "reason": ""}, page + "/edit")
    assert unexplained.status_code == 422 and field_error(unexplained.text, "incident", "reason")
    victim = post(web, "/victims", {"ref": "V-BAD", "incident_ref": "INC-W1", "sex": "female", "civilian": "true",
                                    "date_of_death": "2023-12-12", "date_documented": "2023-12-10"}, "/victims/new")
    assert victim.status_code == 422 and "after the date documented" in (
        field_error(victim.text, "victim", "date_of_death") or "")
    unreasoned = post(web, page + "/attributions", {"parties": ["isis"], "reason": " "}, page)
    assert unreasoned.status_code == 422 and field_error(unreasoned.text, "attribute", "reason")
    assert "Maarrat al-Numan" in web.get(page).text and "Saraqib" not in web.get(page).text


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(web: Any) -> None:
    signed_in(web, "investigator")
    before = len(events(web))
    for data in ({k: v for k, v in INCIDENT.items()}, {**INCIDENT, "csrf": "forged"}):
        answer = web.post("/incidents", data=data, follow_redirects=False)
        assert answer.status_code == 403 and "This form has expired" in answer.text
        assert "/incidents/" not in answer.headers.get("location", "")
    elsewhere = web.post("/incidents", data={**INCIDENT, "csrf": csrf_of(web.get("/incidents").text)},
                         headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert elsewhere.status_code == 403
    assert len(events(web)) == before


def test_a_witness_identity_is_for_a_custodian_who_confirms_and_the_viewing_is_recorded(web: Any) -> None:
    signed_in(web, "investigator")
    made = post(web, "/sources", {"ref": "SRC-ID", "kind": "eyewitness", "alias": "Nightjar",
                                  "identity": f'{{"name": "{WITNESS_NAME}", "phone": "{WITNESS_PHONE}"}}'},
                "/sources/new")
    assert made.status_code == 303, made.text
    page = made.headers["location"]
    source_id = page.rsplit("/", 1)[1]
    shown = web.get(page).text
    assert "Nightjar" in shown and "sealed" in shown
    assert WITNESS_NAME not in shown and WITNESS_PHONE not in shown and "Show real identity" not in shown
    assert WITNESS_NAME not in web.get(page + "/edit").text and WITNESS_NAME not in web.get("/sources").text
    refused = web.post(page + "/identity", data={"csrf": csrf_of(shown), "confirm": "yes"})
    assert refused.status_code == 403 and WITNESS_NAME not in refused.text

    custodian = signed_in(web, "custodian")
    shown = web.get(page).text
    assert "Show real identity" in shown and WITNESS_NAME not in shown
    unconfirmed = web.post(page + "/identity", data={"csrf": csrf_of(shown)})
    assert unconfirmed.status_code == 422 and WITNESS_NAME not in unconfirmed.text
    assert "Tick the box" in (field_error(unconfirmed.text, "reveal", "confirm") or "")
    assert events(web, event_type="access", source=source_id) == []

    revealed = web.post(page + "/identity", data={"csrf": csrf_of(shown), "confirm": "yes"})
    assert revealed.status_code == 200
    assert WITNESS_NAME in revealed.text and WITNESS_PHONE in revealed.text
    assert revealed.headers["cache-control"] == "no-store"
    viewed = events(web, event_type="access", source=source_id)
    assert len(viewed) == 1 and viewed[0].actor == custodian.user_id
    assert WITNESS_NAME not in str(viewed[0].details) and viewed[0].details["action"] == "reveal witness identity"
    assert WITNESS_NAME not in web.get(page).text  # the next view is sealed again


def test_markup_in_a_name_or_narrative_is_shown_as_text(web: Any) -> None:
    signed_in(web, "investigator")
    page = make_incident(web, narrative=XSS_NARRATIVE, place=XSS_NAME)
    made = post(web, "/victims", {"ref": "V-X", "incident_ref": "INC-W1", "name": XSS_NAME, "sex": "male",
                                  "civilian": "true", "date_documented": "2023-12-10"}, "/victims/new")
    assert made.status_code == 303
    for path in (made.headers["location"], "/victims", page, page + "/edit", made.headers["location"] + "/edit"):
        text = web.get(path).text
        assert "<img" not in text and "<script>alert" not in text and "onerror=alert" in text
    bad = post(web, "/victims", {"ref": "V-Y", "incident_ref": XSS_NAME, "name": XSS_NAME, "sex": "male",
                                 "civilian": "true", "date_documented": "2023-12-10"}, "/victims/new")
    assert bad.status_code == 422 and "<img" not in bad.text  # the value kept in the form, and the message, escaped


def test_a_restricted_case_hides_its_incident_and_victims_from_a_non_member(web: Any) -> None:
    from archive.roles import Role
    from archive.services.cases import add_incident, add_member, create_case

    member = signed_in(web, "investigator")
    page = make_incident(web, ref="INC-SECRET")
    victim = post(web, "/victims", {"ref": "V-SECRET", "incident_ref": "INC-SECRET", "name": "Hidden Person",
                                    "sex": "male", "civilian": "true", "date_documented": "2023-12-10"},
                  "/victims/new").headers["location"]
    make_incident(web, ref="INC-OPEN")
    source = post(web, "/sources", {"ref": "SRC-C", "kind": "eyewitness"}, "/sources/new").headers["location"]
    for ref in ("INC-SECRET", "INC-OPEN"):
        assert post(web, f"/incidents/{ref}/links", {"link_type": "source", "target": "SRC-C"}).status_code == 303
    archive = archive_of(web)
    case = create_case(archive, "Case Alpha", role=Role.CUSTODIAN)
    add_incident(archive, case["id"], "INC-SECRET", role=Role.CUSTODIAN)
    add_member(archive, case["id"], member.user_id, role=Role.CUSTODIAN)
    assert web.get(page).status_code == 200 and "INC-SECRET" in web.get("/incidents").text

    signed_in(web, "investigator")  # not a member
    for path in (page, page + "/edit", victim, victim + "/edit"):
        answer = web.get(path)
        assert answer.status_code == 404 and "INC-SECRET" not in answer.text and "Hidden Person" not in answer.text
    listing = web.get("/incidents").text
    assert "INC-SECRET" not in listing and "INC-OPEN" in listing
    source_page = web.get(source).text
    assert "INC-OPEN" in source_page and "INC-SECRET" not in source_page
    offered = web.get("/victims/new").text  # the incidents the form suggests
    assert 'value="INC-OPEN"' in offered and "INC-SECRET" not in offered
    assert "V-SECRET" not in web.get("/victims").text and "Hidden Person" not in web.get("/victims").text
    assert post(web, page, {**INCIDENT, "attribution": [], "reason": "x"}).status_code == 404
    assert post(web, page + "/attributions", {"parties": ["isis"], "reason": "x"}).status_code == 404
    linked = post(web, "/incidents/INC-OPEN/links", {"link_type": "victim", "target": "V-SECRET"})
    assert linked.status_code == 422 and "V-SECRET" in (field_error(linked.text, "link", "target") or "")
    guess = post(web, "/victims", {"ref": "V-NEW", "incident_ref": "INC-SECRET", "sex": "male", "civilian": "true",
                                   "date_documented": "2023-12-10"}, "/victims/new")
    assert guess.status_code == 422 and "no incident" in (field_error(guess.text, "victim", "incident_ref") or "")


def test_a_withheld_name_is_shown_to_custodians_only_and_an_investigators_edit_keeps_it(web: Any) -> None:
    signed_in(web, "custodian")
    make_incident(web)
    made = post(web, "/victims", {"ref": "V-WH", "incident_ref": "INC-W1", "name": "Rawan Qasimi",
                                  "name_withheld": "yes", "sex": "female", "civilian": "true",
                                  "date_documented": "2023-12-10", "family_consent": "yes",
                                  "consent_date": "2023-12-11", "consent_recorded_by": "field team"}, "/victims/new")
    assert made.status_code == 303, made.text
    page = made.headers["location"]
    assert "Rawan Qasimi" in web.get(page).text

    signed_in(web, "investigator")
    shown = web.get(page).text
    assert "Rawan Qasimi" not in shown and "Name withheld" in shown
    consent = shown.split('id="consent-title"')[1].split("</dl>")[0]
    assert "UN bodies" in consent and "Yes" in consent and "Never recorded" in consent
    form = web.get(page + "/edit").text
    assert "Rawan Qasimi" not in form and 'name="name"' not in form and 'name="name_withheld"' not in form
    edited = post(web, page, {"ref": "V-WH", "incident_ref": "INC-W1", "sex": "female", "age": "30",
                              "civilian": "true", "date_documented": "2023-12-10", "reason": "ID card"}, page)
    assert edited.status_code == 303, edited.text
    assert "Name withheld" in web.get(page).text and "Rawan Qasimi" not in web.get("/victims").text
    assert "Name withheld" in web.get("/victims").text
    signed_in(web, "custodian")
    assert "Rawan Qasimi" in web.get(page).text  # still held, still withheld


def test_arabic_pages_are_right_to_left_with_translated_labels_and_names_isolated(web: Any) -> None:
    signed_in(web, "investigator")
    make_incident(web, narrative=MIXED_NAME)
    post(web, "/victims", {"ref": "V-AR", "incident_ref": "INC-W1", "name": MIXED_NAME, "sex": "male",
                           "civilian": "true", "date_documented": "2023-12-10"}, "/victims/new")
    web.headers["Accept-Language"] = "ar-SY,ar;q=0.9"
    pages = (("/incidents", "حادثة جديدة"), ("/victims", "ضحية جديدة"), ("/sources", "مصدر جديد"),
             ("/incidents/new", "المحافظة"), ("/victims/new", "تاريخ التوثيق"), ("/sources/new", "الاسم المستعار"))
    for path, label in pages:
        text = web.get(path).text
        assert '<html lang="ar" dir="rtl">' in text and label in text, path
    listing = web.get("/victims").text
    assert f'<bdi dir="auto">{MIXED_NAME}</bdi>' in listing
    invalid = post(web, "/incidents", {**INCIDENT, "ref": ""}, "/incidents/new")
    assert invalid.status_code == 422 and "يرجى تصحيح" in invalid.text


def test_lists_filter_and_page(web: Any) -> None:
    from api.web.routes import records

    signed_in(web, "investigator")
    for n in range(3):
        make_incident(web, ref=f"INC-P{n}", governorate="aleppo" if n else "idlib", started_at=f"2023-12-0{n + 1}")
    assert "INC-P0" not in web.get("/incidents?governorate=aleppo").text
    assert "INC-P2" in web.get("/incidents?governorate=aleppo&from=2023-12-03").text
    assert "INC-P1" not in web.get("/incidents?governorate=aleppo&from=2023-12-03").text
    bad = web.get("/incidents?from=yesterday")
    assert bad.status_code == 422 and field_error(bad.text, "filter", "from")
    records.PAGE = 2
    try:
        first = web.get("/incidents").text
        assert "INC-P0" in first and "INC-P1" in first and "INC-P2" not in first
        after = re.search(r'href="\?([^"]*after=[^"]*)" rel="next"', first)
        assert after
        second = web.get("/incidents?" + html.unescape(after.group(1))).text
        assert "INC-P2" in second and "INC-P0" not in second and 'rel="next"' not in second
    finally:
        records.PAGE = 50


def test_a_server_without_the_custodian_key_reveals_nothing_and_records_nothing(web: Any) -> None:
    custodian = signed_in(web, "custodian")
    page = post(web, "/sources", {"ref": "SRC-OFF", "kind": "survivor", "identity": WITNESS_NAME},
                "/sources/new").headers["location"]
    key = Path(archive_of(web).settings.custodian_identity_path)
    key.rename(key.with_suffix(".offline"))  # in production the custodian key is kept offline
    try:
        answer = web.post(page + "/identity", data={"csrf": csrf_of(web.get(page).text), "confirm": "yes"})
    finally:
        key.with_suffix(".offline").rename(key)
    assert answer.status_code == 503 and WITNESS_NAME not in answer.text
    assert "custodian identity" in (field_error(answer.text, "reveal", "confirm") or "")
    assert events(web, event_type="access", actor=custodian.user_id) == []


def test_a_source_is_checked_created_and_edited_through_its_forms(web: Any) -> None:
    caller = signed_in(web, "investigator")
    missing = post(web, "/sources", {"ref": "SRC-OS", "kind": "open_source", "channel": "Telegram"}, "/sources/new")
    assert missing.status_code == 422 and "needs its URL" in (field_error(missing.text, "source", "url") or "")
    assert 'value="Telegram"' in missing.text
    made = post(web, "/sources", {"ref": "SRC-OS", "kind": "open_source", "url": "https://example.org/post/1"},
                "/sources/new")
    assert made.status_code == 303, made.text
    page = made.headers["location"]
    shown = web.get(page).text
    assert "Open source" in shown and "https://example.org/post/1" in shown and "None held" in shown
    edited = post(web, page, {"ref": "SRC-OS", "kind": "open_source", "url": "https://example.org/post/1",
                              "channel": "قناة الأخبار", "reason": "the channel's name"}, page + "/edit")
    assert edited.status_code == 303, edited.text
    shown = web.get(page).text
    assert "قناة الأخبار" in shown and "the channel&#39;s name" in shown and caller.user_id in shown
    assert "SRC-OS" in web.get("/sources?kind=open_source").text
    assert "SRC-OS" not in web.get("/sources?kind=medical").text


def test_a_message_beside_a_field_is_in_the_page_language_when_it_names_no_value(web: Any) -> None:
    signed_in(web, "investigator")
    web.headers["Accept-Language"] = "ar"
    answer = post(web, "/incidents", {**INCIDENT, "ref": "", "latitude": "35.9"}, "/incidents/new")
    assert answer.status_code == 422 and field_error(answer.text, "incident", "ref") == (
        "أدخل مرجع السجل: المرجع الخاص بالفريق.")
    located = post(web, "/incidents", {**INCIDENT, "latitude": "35.9"}, "/incidents/new")
    assert field_error(located.text, "incident", "longitude") == "أدخل خط العرض وخط الطول معاً، أو لا تدخل أياً منهما."


def summary_links(page: str) -> list[tuple[str, str]]:
    """The error summary's links: (the field's id, the message)."""
    box = re.search(r'<div class="notice bad error-summary" id="error-summary" tabindex="-1"[^>]*>(.*?)</div>', page,
                    re.S)
    assert box, "no error summary"
    return [(ref, html.unescape(text)) for ref, text in re.findall(r'<a href="#([^"]+)"[^>]*>(.*?)</a>', box.group(1))]


def test_an_empty_incident_form_says_every_problem_at_once(web: Any) -> None:
    signed_in(web, "investigator")
    before = len(events(web))
    empty = post(web, "/incidents", {"latitude": "95.5", "longitude": "abc", "started_at": ""}, "/incidents/new")
    assert empty.status_code == 422
    expected = {"ref": "Give the record's ref: the team's own reference for it.",
                "type": "Choose the type of incident.",
                "started_at": "Give the date the incident started, as YYYY-MM-DD.",
                "governorate": "Choose the governorate.",
                "latitude": "The latitude must be between -90 and 90 degrees.",
                "longitude": "The longitude must be a decimal number of degrees, like 36.63.",
                "attribution": "Choose at least one party responsible."}
    for name, message in expected.items():
        assert field_error(empty.text, "incident", name) == message, name
    assert summary_links(empty.text) == [(f"incident-{name}", message) for name, message in expected.items()]
    for name in expected:  # each field says it is invalid and which message describes it
        assert re.search(rf'id="incident-{name}"[^>]*aria-describedby="[^"]*err-incident-{name}"[^>]*aria-invalid',
                         empty.text), name
    assert "required</p>" not in empty.text  # sentences, not the bare word
    # every required field is marked so, the attribution fieldset too
    legend = re.search(r'<fieldset class="field checks" id="incident-attribution"[^>]*>\s*<legend>(.*?)</legend>',
                       empty.text, re.S)
    assert legend and "(required)" in legend.group(1)
    assert re.search(r'<fieldset[^>]*id="incident-attribution" tabindex="-1"', empty.text)  # the summary links to it
    assert empty.text.count('<span class="required">(required)</span>') >= 5
    assert '<script src="/static/records.js" defer></script>' in empty.text and "onload" not in empty.text
    script = web.get("/static/records.js").text
    assert 'getElementById("error-summary")' in script and "focus()" in script
    bad_date = post(web, "/incidents", {**INCIDENT, "started_at": "2024-13-45", "latitude": "35.9", "longitude": ""},
                    "/incidents/new")
    assert field_error(bad_date.text, "incident", "started_at") == (
        "This is not a real date: write YYYY-MM-DD, or YYYY-MM-DDTHH:MM with a time of day.")
    assert field_error(bad_date.text, "incident", "longitude") == (
        "Give both the latitude and the longitude, or neither.")
    assert len(events(web)) == before  # nothing written
    arabic = web.post("/incidents", data={"csrf": csrf_of(web.get("/incidents/new").text)},
                      headers={"Accept-Language": "ar"}, follow_redirects=False)
    assert field_error(arabic.text, "incident", "type") == "اختر نوع الحادثة."
    assert field_error(arabic.text, "incident", "attribution") == "اختر طرفاً مسؤولاً واحداً على الأقل."
    assert len(summary_links(arabic.text)) == 5 and "(مطلوب)" in arabic.text


def test_a_victim_form_says_every_problem_at_once(web: Any) -> None:
    signed_in(web, "investigator")
    make_incident(web)
    answer = post(web, "/victims", {"ref": "", "incident_ref": "INC-W1", "sex": "", "civilian": "true", "age": "-5",
                                    "date_of_death": "2024-02-30", "date_documented": "", "consent_date": "yesterday"},
                  "/victims/new")
    assert answer.status_code == 422
    expected = {"ref": "Give the record's ref: the team's own reference for it.",
                "sex": "Choose the victim's sex (Unknown if it is not known).",
                "age": "The age must be a whole number of years, like 34.",
                "date_of_death": "This is not a real date: write it as YYYY-MM-DD, for example 2024-03-15.",
                "date_documented": "Give the date the victim was documented, as YYYY-MM-DD.",
                "consent_date": "This is not a real date: write it as YYYY-MM-DD, for example 2024-03-15."}
    for name, message in expected.items():
        assert field_error(answer.text, "victim", name) == message, name
    assert summary_links(answer.text) == [(f"victim-{name}", message) for name, message in expected.items()]
    assert 'value="INC-W1"' in answer.text and 'value="-5"' in answer.text  # what was typed is kept
    later = post(web, "/victims", {"ref": "V-L", "incident_ref": "INC-W1", "sex": "male", "civilian": "true",
                                   "age": "40", "age_group": "child", "date_of_death": "2024-03-02",
                                   "date_documented": "2024-01-01"}, "/victims/new")
    assert field_error(later.text, "victim", "age_group") == (
        "The age group does not match the age: a child is under 18.")
    assert field_error(later.text, "victim", "date_of_death") == (
        "The date of death cannot be after the date documented.")
