"""Liveness, readiness and metrics: who may read them, and whether the figures are right after an ingest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api_support import REPO, bearer, client, make_home, token_for


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_health_is_public_and_says_nothing_else(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    with client(home) as api:
        assert api.get("/healthz").json() == {"status": "ok"}
        ready = api.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "catalog": "ok", "storage": "ok", "reads": "unlocked"}


def test_readiness_follows_storage_and_keys(tmp_path: Path) -> None:
    import api.http.routes.ops as ops

    home = make_home(tmp_path / "home")
    ops.STORAGE_PROBE_SECONDS, saved = 0.0, ops.STORAGE_PROBE_SECONDS
    try:
        with client(home) as api:
            storage = home / "storage"
            (storage / "site-a").rename(storage / "gone-a")
            degraded = api.get("/readyz")
            assert degraded.status_code == 200 and degraded.json()["storage"] == "degraded"
            (storage / "site-b").rename(storage / "gone-b")
            down = api.get("/readyz")
            assert down.status_code == 503 and down.json() == {
                "ready": False, "catalog": "ok", "storage": "unavailable", "reads": "unlocked"}
            assert str(home) not in down.text and "site-" not in down.text  # public: states only
            (storage / "gone-a").rename(storage / "site-a")
            (storage / "gone-b").rename(storage / "site-b")
            (home / "keys" / "access.key").rename(tmp_path / "access.key")  # the access identity away: locked
            locked = api.get("/readyz")
            assert locked.status_code == 200 and locked.json()["reads"] == "locked"  # uploads still work
    finally:
        ops.STORAGE_PROBE_SECONDS = saved


def test_metrics_need_an_auditor_or_custodian(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    tokens = {role: token_for(home, f"ops-{role}", role) for role in
              ("auditor", "custodian", "investigator", "contributor")}
    with client(home) as api:
        assert api.get("/metrics").status_code == 401
        for role, token in tokens.items():
            response = api.get("/metrics", headers=bearer(token))
            assert response.status_code == (200 if role in ("auditor", "custodian") else 403), role
            if response.status_code == 200:
                assert response.headers["content-type"].startswith("text/plain")
                assert "evidence_catalog_up 1.0" in response.text


def test_metrics_figures_after_an_ingest(tmp_path: Path, corpus: Path) -> None:
    from tests.conftest import Cli

    home = make_home(tmp_path / "home")
    cli = Cli(home)
    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    cli("ingest", str(corpus / "media" / "jpg" / "gps" / "DSCN0010.jpg"))
    token = token_for(home, "ops-auditor", "auditor")
    with client(home) as api:
        api.get("/v1/storage")  # a refusal, counted
        text = api.get("/metrics", headers=bearer(token)).text
    samples = _samples(text)
    assert samples[("evidence_items", (("state", "preserved"),))] == 2
    from archive.context import Runtime

    runtime = Runtime.open(home)
    try:
        size = runtime.log_size()
    finally:
        runtime.close()
    assert samples[("evidence_log_size", ())] == size
    assert samples[("evidence_checkpoint_behind_events", ())] == 0  # every command signs what it added
    assert 0 <= samples[("evidence_checkpoint_age_seconds", ())] < 120
    depth = samples[("evidence_queue_depth", ())]
    assert depth == sum(v for (name, labels), v in samples.items() if name == "evidence_queue_jobs"
                        and dict(labels)["state"] in ("queued", "running"))
    assert samples[("evidence_refusals_total", (("reason", "missing"),))] >= 1
    for name in ("evidence_bytes_received_total", "evidence_uploads_in_progress",
                 "evidence_queue_oldest_job_age_seconds"):
        assert any(key[0] == name for key in samples), name


def test_the_in_process_worker_starts_and_stops_with_the_app(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    with client(home, worker=True) as api:
        embedded: Any = api.app.state.worker
        assert embedded is not None and all(t.is_alive() for t in embedded.threads)
    assert not any(t.is_alive() for t in embedded.threads)


def test_redaction_of_log_lines() -> None:
    from api.http.access_log import redact

    secret = "Zm9vYmFyYmF6cXV1eHNlY3JldHNlY3JldHNlY3JldA"
    line = f'- - "PATCH /v1/uploads/up-0123456789abcdef/{secret} HTTP/1.1" 204'
    assert redact(line) == '- - "PATCH /v1/uploads/… HTTP/1.1" 204'
    assert secret not in redact(f"HEAD /v1/uploads/up-1/{secret}?x=1")
    assert redact('"PUT /dav/Amina/witness%20statement.mp4 HTTP/1.1"') == '"PUT /dav/… HTTP/1.1"'
    assert redact('"GET /v1/search?q=Amina%20K HTTP/1.1"') == '"GET /v1/search?… HTTP/1.1"'
    assert "abcdef0123" not in redact("Authorization: Bearer abcdef0123456789")
    assert "abcdef0123" not in redact("{'authorization': 'Basic abcdef0123456789'}")
    assert redact('"GET /v1/items/3f2a9c1e HTTP/1.1" 200') == '"GET /v1/items/3f2a9c1e HTTP/1.1" 200'
    # Near misses a client may send by mistake still carry the secret (R2 F1): redacted whatever the spelling.
    for path in ("/v1/uploads//up-1/{s}", "/v1//uploads/up-1/{s}", "/V1/Uploads/up-1/{s}", "/v1/receipts/up-1/{s}",
                 "/v1/uploads/up-1%2F{s}", "//v1/uploads/up-1/x/{s}", "/DAV/{s}", "/v1/uploads/up-1%252F{s}",
                 "/v1/uploads/up-1\\{s}", "/v1/uploads/up-1{s}", "/v1/upload/up-1/{s}", "/v1/uploads.up-1/{s}"):
        assert secret not in redact(f'"PATCH {path.format(s=secret)} HTTP/1.1" 404'), path


def test_a_real_server_logs_no_secret_and_stops_cleanly(tmp_path: Path) -> None:
    import httpx

    from tests.api_support import serve

    home = make_home(tmp_path / "home")
    token = token_for(home, "ops-custodian", "custodian")
    secret = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ"
    server = serve(home)
    try:
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        httpx.head(f"{server.url}/v1/uploads/up-0123456789abcdef/{secret}", headers=bearer(token), timeout=10)
        httpx.request("PROPFIND", f"{server.url}/dav/Amina-K/statement.mp4", auth=("x", token), timeout=10)
        httpx.get(f"{server.url}/v1/search?q=Amina-K", headers=bearer(token), timeout=10)
        assert httpx.get(f"{server.url}/metrics", headers=bearer(token), timeout=10).status_code == 200
        # A second server on the same port: exit 2 with a clear message, before any worker duty starts.
        second = subprocess.run([sys.executable, "-c", "from api.cli.main import main; main()", "--home", str(home),
                                 "serve", "--port", str(server.port)], capture_output=True, text=True, timeout=60,
                                cwd=REPO)
        assert second.returncode == 2, second.stderr
        assert f"127.0.0.1:{server.port} is in use" in second.stderr and "serving" not in second.stderr
    finally:
        code = server.stop()
    text = server.log_text()
    assert code == 0, text
    assert "GET /readyz" in text  # the access log is there …
    for leaked in (secret, token, "Amina-K", "127.0.0.1:"):  # … without secrets, names, nor addresses
        assert leaked not in text.replace(f"127.0.0.1:{server.port}", ""), leaked
    assert "worker duties in this process" in text


def test_a_silent_request_body_is_cut_off(tmp_path: Path) -> None:
    import socket
    import time

    from tests.api_support import serve

    home = make_home(tmp_path / "home")
    with (home / "config.toml").open("a") as config:
        config.write("\n[api]\nbody_idle_seconds = 1\n")
    token = token_for(home, "ops-custodian", "custodian")
    server = serve(home)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall((f"POST /v1/incidents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                          "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ti").encode())
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(4096):  # the server answers and/or closes; it does not wait forever
                answer += chunk
                if b"\r\n\r\n" in answer and time.monotonic() - started > 0.5:
                    break
            waited = time.monotonic() - started
        assert 0.8 < waited < 10, waited
        assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
    finally:
        server.stop()


def test_on_postgresql_the_worker_runs_elsewhere_by_default(
        tmp_path: Path, fresh_postgres: str, monkeypatch: Any) -> None:
    from api.http.app import create_app

    monkeypatch.setenv("EVIDENCE_DATABASE_URL", fresh_postgres)
    home = make_home(tmp_path / "home")
    app = create_app(str(home))
    try:
        assert app.state.in_process_worker is False  # `evidence worker` processes do it
    finally:
        app.state.runtime.close()
    forced = create_app(str(home), worker=True)
    try:
        assert forced.state.in_process_worker is True
    finally:
        forced.state.runtime.close()
    monkeypatch.delenv("EVIDENCE_DATABASE_URL")
    sqlite_home = make_home(tmp_path / "sqlite-home")
    embedded = create_app(str(sqlite_home))
    try:
        assert embedded.state.in_process_worker is True  # the embedded default: one process is the archive
    finally:
        embedded.state.runtime.close()


def test_answers_are_not_cached_nor_sniffed_and_cors_is_off_unless_configured(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    preflight = {"Origin": "https://upload.example.org", "Access-Control-Request-Method": "PATCH",
                 "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type"}
    with client(home) as api:
        answer = api.get("/healthz")
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in api.options("/v1/uploads/up-1/secret", headers=preflight).headers
    with (home / "config.toml").open("a") as config:
        config.write('\n[api]\ncors_origins = ["https://upload.example.org"]\n')
    with client(home) as api:
        answer = api.options("/v1/uploads/up-1/secret", headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://upload.example.org"
        assert "PATCH" in answer.headers["access-control-allow-methods"]
        elsewhere = api.options("/v1/uploads/up-1/secret", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in elsewhere.headers


def test_storage_status_is_non_personal(tmp_path: Path, corpus: Path) -> None:
    import hashlib

    from tests.conftest import Cli

    home = make_home(tmp_path / "home")
    photo = corpus / "media" / "jpg" / "Canon_40D.jpg"
    Cli(home)("ingest", str(photo), "--source", "Amina-K field team")
    token = token_for(home, "ops-auditor", "auditor")
    with client(home) as api:
        answer = api.get("/v1/storage", headers=bearer(token))
    assert answer.status_code == 200
    status = answer.json()
    assert status["items"]["preserved"] == 1
    assert {site["name"] for site in status["backends"]} == {"site-a", "site-b"}
    assert all(site["answers"] and site["originals"] == 1 for site in status["backends"])
    for personal in (hashlib.sha256(photo.read_bytes()).hexdigest(), "Canon_40D", "Amina-K", "tester"):
        assert personal not in answer.text, personal
