"""Routes: liveness, readiness and metrics (see `api.http.matrix` for who may call each).

`/healthz` says only that the process answers. `/readyz` says whether it can
do its work: the catalog answers, enough storage sites for the policy's
minimum answer (uploads need them), and whether reads can be served (the
access identity unlocked). Both are public, so they say states, never
errors, paths or names. `/metrics` (auditors and custodians) is the
Prometheus text format.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.http import metrics
from archive.services.dashboard import seconds_since

router = APIRouter(tags=["service"])

STORAGE_PROBE_SECONDS = 5.0  # a storage probe is reused this long (readyz is polled, probes cost a round trip)


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


class _Probe:
    """The storage sites' health, probed at most every STORAGE_PROBE_SECONDS, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0
        self._held: tuple[int, int, int] = (0, 0, 0)  # (answering policy sites, policy sites, minimum)

    def sites(self, runtime: Any) -> tuple[int, int, int]:
        with self._lock:
            if time.monotonic() - self._at < STORAGE_PROBE_SECONDS:
                return self._held
            archive = runtime.archive("archive")
            backends = archive.policy_backends()

            def answers(backend: Any) -> bool:
                try:
                    return backend.health() is None
                except Exception:  # noqa: BLE001 - a probe that crashes means "does not answer"
                    return False

            with ThreadPoolExecutor(max_workers=max(1, len(backends))) as pool:
                answering = sum(pool.map(answers, backends))
            self._held = (answering, len(backends), int(archive.config.policy.minimum))
            self._at = time.monotonic()
            return self._held


def _probe_of(app: Any) -> _Probe:
    probe = getattr(app.state, "storage_probe", None)
    if probe is None:
        probe = app.state.storage_probe = _Probe()
    return probe  # type: ignore[no-any-return]


def readiness(runtime: Any, probe: _Probe) -> tuple[bool, dict[str, Any]]:
    """(ready, what each part says), without error texts: the route is public."""
    parts: dict[str, Any] = {}
    try:
        runtime.log_size()
        parts["catalog"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "does not answer"
        parts["catalog"] = "unavailable"
    if parts["catalog"] == "ok":
        try:
            answering, total, minimum = probe.sites(runtime)
            parts["storage"] = ("ok" if answering == total else
                                "degraded" if answering >= max(1, minimum) else "unavailable")
        except Exception:  # noqa: BLE001 - no configuration, a policy naming a missing site
            parts["storage"] = "unavailable"
    else:
        parts["storage"] = "unknown"
    try:
        runtime.keys.access_identities()
        parts["reads"] = "unlocked"
    except Exception:  # noqa: BLE001 - Locked: uploads still work, reads of originals wait for `evidence unlock`
        parts["reads"] = "locked"
    ready = parts["catalog"] == "ok" and parts["storage"] in ("ok", "degraded")
    return ready, parts


@router.get("/readyz", summary="Readiness: catalog, storage and keys",
            responses={503: {"description": "Not ready: the catalog or the storage does not answer"}})
def readyz(request: Request) -> JSONResponse:
    ready, parts = readiness(request.app.state.runtime, _probe_of(request.app))
    return JSONResponse({"ready": ready, **parts}, status_code=200 if ready else 503)


def catalog_figures(runtime: Any) -> dict[str, Any]:
    """The figures `/metrics` reads from the catalog: a handful of aggregate queries on indexed columns."""
    from sqlalchemy import inspect, text

    from archive.catalog.jobs import DONE, FAILED
    from archive.db import read_only

    now = datetime.now(UTC)
    engine = read_only(runtime.engine)
    figures: dict[str, Any] = {}
    with engine.connect() as conn:
        figures["items"] = {str(state): int(n) for state, n in
                            conn.execute(text("SELECT status, COUNT(*) FROM items GROUP BY status"))}
        figures["jobs"] = {str(state): int(n) for state, n in
                           conn.execute(text("SELECT state, COUNT(*) FROM jobs GROUP BY state"))}
        figures["queue_depth"] = sum(n for state, n in figures["jobs"].items() if state not in (DONE, FAILED))
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        oldest = conn.execute(
            text("SELECT MIN(next_run_at) FROM jobs WHERE state NOT IN (:done, :failed) AND next_run_at <= :now"),
            {"done": DONE, "failed": FAILED, "now": stamp},
        ).scalar()
        figures["oldest_job_age"] = seconds_since(oldest, now) or 0.0
        size = int(conn.execute(text("SELECT size FROM log_head WHERE id = 1")).scalar() or 0)
        figures["log_size"] = size
        latest = conn.execute(
            text("SELECT tree_size, issued_at FROM checkpoints ORDER BY tree_size DESC LIMIT 1")).first()
        figures["checkpoint_age"] = seconds_since(latest[1], now) if latest is not None else None
        figures["checkpoint_behind"] = size - (int(latest[0]) if latest is not None else 0)
        if inspect(conn).has_table("uploads"):
            try:
                figures["uploads_open"] = int(conn.execute(
                    text("SELECT COUNT(*) FROM uploads WHERE state IN ('open', 'completing')")).scalar() or 0)
            except Exception:  # noqa: BLE001 - the uploads table's shape is the uploads module's
                pass
    return figures


_collectors: dict[int, Any] = {}
_collectors_lock = threading.Lock()


def _registry_for(runtime: Any) -> Any:
    """The process's registry with this runtime's catalog collector (one per runtime: tests make several apps)."""
    from prometheus_client import CollectorRegistry

    key = id(runtime)
    with _collectors_lock:
        held = _collectors.get(key)
        if held is None or held[0] is not runtime:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(metrics.CatalogCollector(lambda: catalog_figures(runtime)))
            held = (runtime, registry)
            _collectors.clear()  # the newest app's runtime only: a server has one
            _collectors[key] = held
        return held[1]


@router.get("/metrics", summary="Prometheus metrics (auditors and custodians)",
            response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(metrics.REGISTRY) + generate_latest(_registry_for(request.app.state.runtime))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
