"""The FastAPI application: one `Runtime` for the process, every router, roles checked on every route.

`create_app(home)` opens the archive's runtime once (engine, storage clients,
keys: shared by every request; each request gets its own `Archive` acting as
its caller, `api.http.auth.archive_for`). Every route passes the app-level
`authorize` dependency, which refuses anything the matrix (`api.http.matrix`)
does not admit. On the embedded default (SQLite) the worker's duties run in
a background thread of the server, so one `evidence serve` is the whole
archive; on PostgreSQL separate `evidence worker` processes do them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from api.http import errors, metrics
from api.http.auth import AuthorizeMiddleware, authorize

log = logging.getLogger("api.http")

ROUTERS = ("ops", "log", "storage", "items", "records", "uploads", "receipts", "exports", "dav")
DEFAULT_BODY_IDLE_SECONDS = 60.0  # a request body that sends nothing for this long is cut off
DEFAULT_THREADS = 64  # requests served at once by sync routes and dependencies (anyio's default is 40)
HOUSEKEEPING_SECONDS = 600.0  # expired uploads swept this often by the in-process worker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyIdleTimeout:
    """Cut off a request body that stops arriving: a client silent for `seconds` looks disconnected.

    The route reading the body (a tus PATCH, a WebDAV PUT) sees the disconnect
    as it would a dropped connection: what arrived is kept (tus resumes from
    it), the worker thread is freed, and the connection closes. Only the body
    is timed: waiting for a disconnect after the body (a streamed download)
    is not.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        done = False

        async def timed() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                done = True
                metrics.refuse("idle")
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, timed, send)


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY")]


class CountResponses:
    """Count responses by status class (2xx, 4xx …) without looking at paths (they may carry secrets), and
    add the headers every answer carries: no sniffing, no referrer, and `Cache-Control: no-store` unless the
    route chose its own (answers hold personal data: no browser or proxy may keep them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                metrics.REQUESTS.labels(f"{int(message['status']) // 100}xx").inc()
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, counted)


def _embedded(runtime: Any) -> bool:
    return str(runtime.settings.catalog_url()).startswith("sqlite")


def _api_settings(runtime: Any) -> dict[str, Any]:
    return dict(runtime.settings.section("api") or {})


def _warm(runtime: Any) -> None:
    """Make the runtime's lazily built parts now, in one thread, before requests share them.

    `Runtime.engine` is built (and the catalog migrated) at first use without a
    lock; two request threads racing there would build two engines. Settling
    rows written while locked runs once per process at an archive's first
    catalog use: here, not inside a request.
    """
    runtime.engine  # noqa: B018 - built for its side effect
    runtime.keys  # noqa: B018
    runtime.pool  # noqa: B018
    try:
        runtime.archive("archive").engine  # noqa: B018 - settles what a locked process wrote
    except Exception as exc:  # noqa: BLE001 - /readyz reports an archive that cannot answer yet
        log.warning("the archive is not ready: %s", exc)


class EmbeddedWorker:
    """The worker's duties in a background thread of the server (the embedded default)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, target in (("evidence-worker", self._work), ("evidence-housekeeping", self._housekeeping)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _work(self) -> None:
        from archive.services.worker import Worker

        while not self.stop.is_set():
            try:
                runner = Worker(self.runtime.archive("archive"))
                runner.ran = deque(maxlen=256)  # type: ignore[assignment]  # a server runs for months
                runner.run(stop=self.stop)
            except Exception:  # noqa: BLE001 - the loop itself failed (catalog gone): try again shortly
                log.exception("the in-process worker stopped; restarting it")
                self.stop.wait(30.0)

    def _housekeeping(self) -> None:
        while True:
            expire_uploads(self.runtime)
            if self.stop.wait(HOUSEKEEPING_SECONDS):
                return

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current job (SIGTERM's promise) and wait for it."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)


def expire_uploads(runtime: Any) -> int:
    """Sweep idle uploads past their expiry (`archive.services.uploads`, once it exists)."""
    try:
        from archive.services.uploads import expire_uploads as sweep
    except ImportError:
        return 0
    try:
        return int(sweep(runtime.archive("archive")))
    except Exception:  # noqa: BLE001 - cleanup is retried at the next sweep
        log.exception("expiring uploads failed")
        return 0


def _include_routers(app: FastAPI) -> None:
    for name in ROUTERS:
        module = importlib.import_module(f"api.http.routes.{name}")
        app.include_router(module.router)


def create_app(home: str | None = None, *, worker: bool | None = None) -> FastAPI:
    """The application over the archive at `home`.

    `worker`: run the worker's duties in this process (None: yes on SQLite,
    no on PostgreSQL, where `evidence worker` processes run). The worker
    starts with the app's lifespan (uvicorn, or a `with TestClient(app)`).
    """
    from archive.context import Runtime

    runtime = Runtime.open(home)
    _warm(runtime)
    in_process = _embedded(runtime) if worker is None else worker
    settings = _api_settings(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = int(settings.get("threads", DEFAULT_THREADS))
        embedded = None
        if in_process:
            embedded = EmbeddedWorker(runtime)
            embedded.start()
        else:
            await asyncio.to_thread(expire_uploads, runtime)
        app.state.worker = embedded
        try:
            yield
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.close)
            runtime.close()

    app = FastAPI(
        title="Evidence archive",
        version="1",
        description="Resumable field uploads with signed receipts; the documentation model; the custody log. "
                    "Every route but /healthz, /readyz, the OpenAPI document and tus discovery needs "
                    "`Authorization: Bearer TOKEN` (HTTP Basic under /dav/ only).",
        docs_url=None,  # Swagger UI loads its scripts from a CDN: no third-party request, ever
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json",
        # No 307 to the slash-less twin: it answers before any authorization, and for
        # /v1/uploads/<id>/<secret>/ its Location would carry the upload's secret.
        redirect_slashes=False,
        dependencies=[Depends(authorize)],
        responses=errors.COMMON_RESPONSES,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.worker = None
    app.state.in_process_worker = in_process
    errors.install(app)
    _include_routers(app)
    from api.web import install as install_pages

    install_pages(app)
    app.add_middleware(AuthorizeMiddleware, fastapi=app)
    app.add_middleware(BodyIdleTimeout, seconds=float(settings.get("body_idle_seconds", DEFAULT_BODY_IDLE_SECONDS)))
    app.add_middleware(CountResponses)
    origins = [str(origin) for origin in settings.get("cors_origins", [])]
    if origins:  # browser tus clients (Uppy, tus-js-client) on another origin; none by default
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                           allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "Tus-Resumable", "Upload-Length",
                                          "Upload-Offset", "Upload-Metadata", "Upload-Checksum",
                                          "Upload-Defer-Length", "Upload-Concat", "X-HTTP-Method-Override"],
                           expose_headers=["Location", "Upload-Offset", "Upload-Length", "Upload-Expires",
                                           "Upload-Receipt", "Tus-Resumable", "Tus-Version", "Tus-Extension",
                                           "Tus-Max-Size", "Tus-Checksum-Algorithm", "Retry-After"],
                           max_age=600)
    return app
