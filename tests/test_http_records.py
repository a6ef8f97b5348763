"""The documentation model over HTTP, attacked as a client would: per-record rules, bad input, import.

The matrix test (tests/test_http_matrix.py) checks 401/403 for every route and
role; these check what a role may see *inside* an answer: an investigator never
meets a witness's identity or a withheld name through any route, a contributor
reads nothing, bad bodies and unknown refs are clear JSON errors, and an import
through the API is the import the CLI does, without the file resting in clear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import bearer, client, make_home, token_for
from tests.conftest import Cli

WITHHELD_NAME = "Rawan Haddad Qasimi"
WITNESS_NAME = "Yusuf Tamer Khatib"
WITNESS_PHONE = "+963 944 512 337"
NOTE_NAME = "Qasimi's brother filmed it"
SECRETS = (WITHHELD_NAME, "Qasimi", WITNESS_NAME, WITNESS_PHONE, "512 337")

INCIDENT = {"ref": "INC-HTTP-1", "type": "killing", "started_at": "2023-12-09T14:30", "governorate": "idlib",
            "attribution": "syrian_regime", "place": "Maarrat al-Numan", "narrative": "Shelling of the market."}


class Api:
    """One archive home, a token per role, one in-process client with its lifespan running."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tokens = {role: token_for(home, f"{role}-user", role)
                       for role in ("custodian", "investigator", "contributor", "auditor")}
        self.manager = client(home)
        self.client = self.manager.__enter__()

    def __call__(self, method: str, path: str, role: str = "investigator", **kwargs: Any) -> Any:
        headers = {**bearer(self.tokens[role]), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def close(self) -> None:
        self.manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A home holding one incident, a victim whose family asked to withhold the name, a witness with a sealed
    identity, and a link whose note spells the name: everything an investigator must not be shown."""
    home = make_home(tmp_path_factory.mktemp("records") / "home")
    api = Api(home)
    try:
        assert api("POST", "/v1/incidents", json=INCIDENT).status_code == 201
        made = api("POST", "/v1/victims", "custodian", json={
            "ref": "V-WITHHELD", "incident_ref": "INC-HTTP-1", "name": WITHHELD_NAME, "name_withheld": True,
            "sex": "female", "age": 34, "civilian": True, "date_documented": "2023-12-10",
            "family_consent": "yes", "consent_date": "2023-12-11", "consent_recorded_by": "field team"})
        assert made.status_code == 201, made.text
        assert made.json()["name"] == WITHHELD_NAME  # the custodian sees it: the test below can fail
        assert api("PATCH", "/v1/victims/V-WITHHELD", "custodian",
                   json={"age": 35, "reason": f"{WITHHELD_NAME}'s ID card"}).status_code == 200
        witness = api("POST", "/v1/sources", json={
            "ref": "SRC-W1", "kind": "eyewitness", "alias": "Nightjar",
            "identity": {"name": WITNESS_NAME, "phone": WITNESS_PHONE}})
        assert witness.status_code == 201, witness.text
        assert api("POST", "/v1/sources/SRC-W1/interviews", json={
            "held_on": "2023-12-12", "informed_consent": True, "no_payment": True}).status_code == 201
        linked = api("POST", "/v1/links", "custodian", json={"a": "SRC-W1", "b": "INC-HTTP-1",
                                                             "note": "saw it from the roof"})
        assert linked.status_code == 201, linked.text
        victim_link = api("POST", "/v1/links", "custodian", json={"a": "V-WITHHELD", "b": "INC-HTTP-1",
                                                                  "a_type": "victim", "note": NOTE_NAME})
        assert victim_link.status_code == 201, victim_link.text
        api.link_id = victim_link.json()["id"]  # type: ignore[attr-defined]
        yield api
    finally:
        api.close()


def _clean(response: Any) -> str:
    assert response.status_code < 500, response.text
    text = response.text
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {response.request.method} {response.request.url}: {text[:400]}"
    return text


def test_an_investigator_never_sees_a_withheld_name_nor_a_witness_identity(api: Api) -> None:
    reads = ["/v1/victims/V-WITHHELD", "/v1/victims/V-WITHHELD?history=true", "/v1/victims?names=true",
             "/v1/victims?names=true&status=all", "/v1/incidents/INC-HTTP-1?history=true", "/v1/incidents",
             "/v1/sources", "/v1/sources/SRC-W1", "/v1/sources/SRC-W1?history=true", "/v1/links?of=V-WITHHELD",
             "/v1/links?of=INC-HTTP-1&all=true", f"/v1/links/{api.link_id}?history=true",  # type: ignore[attr-defined]
             "/v1/victim-matches?state=all", "/v1/search?governorate=idlib", "/v1/stats?by=governorate",
             "/v1/candidates"]
    for path in reads:
        _clean(api("GET", path))
    _clean(api("POST", "/v1/victim-matches/suggest", json={}))  # a withheld person takes no part in matching
    shown = api("GET", "/v1/victims/V-WITHHELD").json()
    assert shown["name"] == "[withheld]" and shown["name_withheld"] is True
    assert api("GET", "/v1/sources/SRC-W1").json()["identity"] == "sealed: custodians only"
    # Asking for the identity is refused, not answered with it.
    refused = api("GET", "/v1/sources/SRC-W1?reveal_identity=true")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    _clean(refused)
    # A guessed name is refused whether right or wrong (a difference would confirm it), and so is lifting it.
    for guess in (WITHHELD_NAME, "Someone Else"):
        answer = api("PATCH", "/v1/victims/V-WITHHELD", json={"name": guess})
        assert answer.status_code == 403, answer.text
        _clean(answer)
    assert api("PATCH", "/v1/victims/V-WITHHELD", json={"name_withheld": False}).status_code == 403
    # Every answer of a write that succeeds is shown as the investigator may see it, too.
    _clean(api("POST", "/v1/victims/V-WITHHELD/consents", json={"scope": "courts", "answer": "no"}))
    # The custodian, by the same routes, does see them (so the checks above can fail).
    assert WITHHELD_NAME in api("GET", "/v1/victims?names=true", "custodian").text
    assert NOTE_NAME in api("GET", f"/v1/links/{api.link_id}", "custodian").text  # type: ignore[attr-defined]


def test_a_contributor_and_an_auditor_read_no_record(api: Api) -> None:
    paths = ["/v1/incidents", "/v1/incidents/INC-HTTP-1", "/v1/victims", "/v1/victims/V-WITHHELD", "/v1/sources",
             "/v1/sources/SRC-W1", "/v1/links?of=INC-HTTP-1", "/v1/candidates", "/v1/search", "/v1/stats",
             "/v1/victim-matches"]
    for role in ("contributor", "auditor"):
        for path in paths:
            answer = api("GET", path, role)
            assert answer.status_code == 403, (role, path, answer.text)
            assert "INC-HTTP-1" not in answer.text.replace(path, "") and "idlib" not in answer.text
        assert api("POST", "/v1/incidents", role, json={**INCIDENT, "ref": "INC-X"}).status_code == 403
    assert api("GET", "/v1/incidents/INC-X").status_code == 404  # nothing was written


def test_bad_bodies_and_unknown_refs_are_clear_json_errors(api: Api) -> None:
    def error(answer: Any, status: int) -> dict[str, Any]:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        return dict(answer.json())

    error(api("POST", "/v1/incidents", content=b'{"ref": ', headers={"content-type": "application/json"}), 422)
    error(api("POST", "/v1/incidents", json=[1, 2]), 422)
    error(api("POST", "/v1/incidents", json={**INCIDENT, "ref": "INC-2", "colour": "red"}), 422)  # unknown field
    error(api("POST", "/v1/incidents", json={k: v for k, v in INCIDENT.items() if k != "type"}), 422)
    error(api("POST", "/v1/victims", json={"ref": "V-2", "incident_ref": "INC-HTTP-1", "sex": "male",
                                           "civilian": "maybe", "date_documented": "2023-12-10"}), 422)
    # The service's own refusal: 422 with its message, naming the field.
    refused = error(api("POST", "/v1/incidents", json={**INCIDENT, "ref": "INC-3", "type": "airstrike"}), 422)
    assert refused["error"] == "invalid" and "type" in refused["detail"] and "airstrike" in refused["detail"]
    refused = error(api("POST", "/v1/incidents", json={**INCIDENT, "started_at": "2023-02-30"}), 422)
    assert "started_at" in refused["detail"]
    assert "exists already" in error(api("POST", "/v1/incidents", json=INCIDENT), 422)["detail"]
    # Unknown refs: 404 JSON, for every kind.
    for path in ("/v1/incidents/NOPE", "/v1/victims/NOPE", "/v1/sources/NOPE", "/v1/links/lnk-0000000000000000",
                 "/v1/links?of=NOPE"):
        assert error(api("GET", path), 404)["error"] == "not_found"
    error(api("PATCH", "/v1/incidents/NOPE", json={"place": "x"}), 404)
    error(api("POST", "/v1/incidents/NOPE/attributions", json={"parties": "syrian_regime", "reason": "x"}), 404)
    error(api("DELETE", "/v1/links/lnk-0000000000000000"), 404)
    # A body past the JSON limit is refused before it is parsed.
    huge = api("POST", "/v1/incidents", content=b'{"narrative": "' + b"x" * (2 << 20) + b'"}',
               headers={"content-type": "application/json"})
    assert huge.status_code == 413, huge.text
    # Query parameters are checked too.
    error(api("GET", "/v1/stats?by=colour"), 422)
    error(api("GET", "/v1/stats?from=2023-13-01"), 422)
    error(api("GET", "/v1/incidents?limit=0"), 422)
    error(api("GET", "/v1/incidents?after=INC-NOT-LISTED"), 422)
    error(api("GET", "/v1/search?sha256=xyz"), 422)


def test_lists_page_with_limit_and_after(api: Api) -> None:
    for n in range(5):
        made = api("POST", "/v1/incidents", json={**INCIDENT, "ref": f"INC-PAGE-{n}",
                                                  "started_at": f"2022-01-0{n + 1}"})
        assert made.status_code == 201, made.text
    everything = [i["ref"] for i in api("GET", "/v1/incidents?limit=1000").json()["data"]]
    seen: list[str] = []
    after = None
    while True:
        answer = api("GET", "/v1/incidents", params={"limit": 2, **({"after": after} if after else {})}).json()
        assert len(answer["data"]) <= 2
        seen += [i["ref"] for i in answer["data"]]
        after = answer["next"]
        if after is None:
            break
    assert seen == everything and len(set(seen)) == len(seen) >= 6


def test_the_vocabularies_are_read_by_documenters_only(api: Api) -> None:
    parties = api("GET", "/v1/vocab?vocabulary=parties")
    assert parties.status_code == 200 and list(parties.json()) == ["parties"]
    assert "syrian_regime" in {t["key"] for t in parties.json()["parties"]}
    assert set(api("GET", "/v1/vocab").json()) >= {"parties", "incident_types", "governorates"}
    assert api("GET", "/v1/vocab?vocabulary=colours").status_code == 422
    assert api("GET", "/v1/vocab", "contributor").status_code == 403


def test_edits_attributions_and_links_go_through_with_history(api: Api) -> None:
    edited = api("PATCH", "/v1/incidents/INC-HTTP-1", json={"weapon": None, "place": "Kafranbel", "reason": "map"})
    assert edited.status_code == 200 and edited.json()["place"] == "Kafranbel"
    attributed = api("POST", "/v1/incidents/INC-HTTP-1/attributions",
                     json={"parties": ["syrian_regime", "russian_forces"], "reason": "two witnesses",
                           "evidence": ["SRC-W1"]})
    assert attributed.status_code == 201, attributed.text
    assert attributed.json()["attribution"] == "russian_forces+syrian_regime"
    assert attributed.json()["attributions"][-1]["evidence"] == ["SRC-W1"]
    history = api("GET", "/v1/incidents/INC-HTTP-1?history=true").json()["history"]
    assert [c["change"] for c in history][-2:] == ["edit", "attribute"]
    unlinked = api("DELETE", f"/v1/links/{api.link_id}", json={"reason": "wrong incident"})  # type: ignore[attr-defined]
    assert unlinked.status_code == 200 and unlinked.json()["active"] is False
    again = api("DELETE", f"/v1/links/{api.link_id}")  # type: ignore[attr-defined]
    assert again.status_code == 422


VICTIMS_CSV = (
    "ref,incident_ref,name,name_withheld,sex,age,civilian,professions,governorate_of_death,date_of_death,"
    "date_documented,family_consent,consent_date,consent_recorded_by\n"
    "IMP-V1,IMP-I1,Samir Nasser,false,male,41,true,medical,idlib,2023-11-02,2023-11-03,yes,2023-11-04,team\n"
    "IMP-V2,IMP-I1,Huda Nasser,true,female,9,true,,idlib,2023-11-02,2023-11-03,,,\n"
    "IMP-V3,IMP-I2,,false,unknown,,false,,aleppo,,2023-11-05,,,\n"
)
INCIDENTS_CSV = (
    "ref,type,started_at,started_precision,governorate,place,latitude,longitude,attribution,narrative\n"
    "IMP-I1,killing,2023-11-02T09:15,minute,idlib,Saraqib,35.86,36.80,syrian_regime,\"=HYPERLINK(\"\"x\"\")\"\n"
    "IMP-I2,explosion,2023-11-05,day,aleppo,,,,russian_forces,\n"
)


def _exported(cli: Cli, tmp: Path, tag: str) -> tuple[str, str]:
    incidents, victims = tmp / f"{tag}-incidents.csv", tmp / f"{tag}-victims.csv"
    cli("export-records", "--incidents", str(incidents), "--victims", str(victims))
    return incidents.read_text(encoding="utf-8"), victims.read_text(encoding="utf-8")


def _counts(report: dict[str, Any]) -> dict[str, Any]:
    return {what: {k: v for k, v in entry.items() if k not in ("file", "event")} | {"event": bool(entry["event"])}
            for what, entry in report.items() if what != "imported"}


def test_import_through_the_api_is_the_import_of_the_cli(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "incidents.csv").write_text(INCIDENTS_CSV, encoding="utf-8")
    (files / "victims.csv").write_text(VICTIMS_CSV, encoding="utf-8")
    by_cli = Cli(make_home(tmp_path / "cli-home"))
    cli_report = by_cli.json("import", "--incidents", str(files / "incidents.csv"),
                             "--victims", str(files / "victims.csv"))
    api_home = make_home(tmp_path / "api-home")
    token = token_for(api_home, "keeper", "custodian")
    with client(api_home) as http:
        answer = http.post("/v1/import", headers=bearer(token), files={
            # the victims part first: the importer still reads the incidents first, from the sealed spool
            "victims": ("victims.csv", VICTIMS_CSV.encode(), "text/csv"),
            "incidents": ("incidents.csv", INCIDENTS_CSV.encode(), "text/csv")})
        assert answer.status_code == 200, answer.text
        api_report = answer.json()
        assert api_report["incidents"]["file"] == "incidents.csv"
        assert _counts(api_report) == _counts(cli_report)
        assert _exported(Cli(api_home), tmp_path, "api") == _exported(by_cli, tmp_path, "cli")
        # The same file again: nothing changes, no event (as the CLI promises).
        again = http.post("/v1/import", headers=bearer(token),
                          files={"incidents": ("incidents.csv", INCIDENTS_CSV.encode(), "text/csv")}).json()
        assert again["incidents"]["unchanged"] == 2 and again["incidents"]["event"] is None
        # A bad row anywhere: 422 with the report, nothing imported.
        bad = http.post("/v1/import?format=csv", headers=bearer(token), files={
            "incidents": ("incidents.csv", (INCIDENTS_CSV + "IMP-I3,killing,2023-02-30,day,idlib,,,,x,\n").encode(),
                          "text/csv")})
        assert bad.status_code == 422 and bad.json()["report"]["imported"] is False
        assert bad.json()["report"]["incidents"]["errors"][0]["line"] == 4
        assert http.get("/v1/incidents/IMP-I3", headers=bearer(token)).status_code == 404
        # JSON Lines, and bodies that are not what the route takes.
        jsonl = json.dumps({"ref": "IMP-I4", "type": "killing", "started_at": "2023-10-01", "governorate": "idlib",
                            "attribution": "syrian_regime"}) + "\n"
        done = http.post("/v1/import?format=jsonl", headers=bearer(token),
                         files={"incidents": ("more.jsonl", jsonl.encode(), "application/x-ndjson")})
        assert done.status_code == 200 and done.json()["incidents"]["created"] == 1
        wrongs: list[dict[str, Any]] = [{"files": {"photos": ("a.csv", b"x", "text/csv")}},
                                        {"json": {"incidents": "x"}}, {"files": {}}]
        for wrong in wrongs:
            refused = http.post("/v1/import", headers=bearer(token), **wrong)
            assert refused.status_code == 422, refused.text
        investigator = token_for(api_home, "ivan", "investigator")
        assert http.post("/v1/import", headers=bearer(investigator), files={
            "incidents": ("incidents.csv", INCIDENTS_CSV.encode(), "text/csv")}).status_code == 403


def test_the_import_spool_holds_no_plaintext_and_refuses_an_altered_file() -> None:
    from api.http.routes.records import SEGMENT, SealedSpool
    from archive.services.errors import Invalid

    plain = (VICTIMS_CSV * 2000).encode()  # ~700 KB: many segments

    def filled() -> tuple[SealedSpool, bytes]:
        spool = SealedSpool("victims.csv")
        for start in range(0, len(plain), 10_000):
            spool.write(plain[start : start + 10_000])
        spool.finish()
        spool._file.seek(0)
        return spool, spool._file.read()

    spool, at_rest = filled()
    assert len(at_rest) > len(plain)
    for start in range(0, len(plain) - 64, len(plain) // 50):  # no run of 64 plaintext bytes anywhere
        assert plain[start : start + 64] not in at_rest
    assert spool.reader().read() == plain
    # A flipped byte, or a file cut after a segment boundary, is an error, never other or fewer rows.
    spool, at_rest = filled()
    spool._file.seek(SEGMENT // 2)
    spool._file.write(bytes([at_rest[SEGMENT // 2] ^ 1]))
    spool._file.flush()
    with pytest.raises(Invalid, match="altered"):
        spool.reader().read()
    spool, at_rest = filled()
    spool._file.truncate(4 + 16 + SEGMENT)
    with pytest.raises(Invalid, match="cut short"):
        spool.reader().read()
