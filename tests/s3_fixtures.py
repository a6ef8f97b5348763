"""Pytest fixtures for tests against real S3 servers: two SeaweedFS sites, buckets, backends.

Import what a module needs (`from tests.s3_fixtures import *` style names listed
in `__all__`), or load the module with `pytest_plugins`. The two sites are
session-scoped: they start once (about ten seconds each, in parallel) and stop
at the end of the run, SIGTERM then SIGKILL.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import WeedServer

__all__ = ["weed_sites", "site_a", "site_b", "make_backend"]


_shared_sites: tuple[WeedServer, WeedServer] | None = None


def _start_sites(root: Path) -> tuple[WeedServer, WeedServer]:
    servers = (WeedServer(root / "weed-a"), WeedServer(root / "weed-b"))
    errors: list[BaseException] = []

    def start(server: WeedServer) -> None:
        try:
            server.root.mkdir(parents=True, exist_ok=True)
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        _stop_all(servers)
        raise errors[0]
    return servers


def _stop_all(servers: tuple[WeedServer, ...]) -> None:
    stoppers = [threading.Thread(target=server.stop) for server in servers]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()


@pytest.fixture(scope="session")
def weed_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WeedServer, WeedServer]]:
    """Two independent S3 servers (site A and site B), started in parallel, once per run.

    Test modules import this fixture by name, which gives each module its own
    fixture definition; the module-level cache makes them all share one pair.
    """
    global _shared_sites
    if _shared_sites is None:
        _shared_sites = _start_sites(tmp_path_factory.mktemp("weed"))
    servers = _shared_sites
    try:
        yield servers
    finally:
        _stop_all(servers)  # idempotent: the first teardown (at session end) stops them
        _shared_sites = None


@pytest.fixture()
def site_a(weed_sites: tuple[WeedServer, WeedServer]) -> Iterator[WeedServer]:
    """Site A, running (restarted if an earlier test stopped it)."""
    server = weed_sites[0]
    server.start()
    yield server
    server.start()


@pytest.fixture()
def site_b(weed_sites: tuple[WeedServer, WeedServer]) -> Iterator[WeedServer]:
    server = weed_sites[1]
    server.start()
    yield server
    server.start()


BackendMaker = Callable[..., Any]


@pytest.fixture(params=["s3", "minio"])
def make_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """Build a backend of the parametrised kind on a server, with credentials in the environment.

    `make_backend(server, bucket=None, versioned=True, lock_bucket=False, secret=None, **options)`
    uses the server's shared bucket of that flavour with a prefix of its own
    unless a bucket is given; `secret` overrides the secret key (wrong-credential tests).
    """
    from archive.config import StorageSpec
    from storage.registry import build_backend
    from storage.s3_common import env_prefix

    kind = str(request.param)

    def make(
        server: WeedServer,
        *,
        bucket: str | None = None,
        versioned: bool = True,
        lock_bucket: bool = False,
        secret: str | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> Any:
        name = f"{kind}-{secrets.token_hex(3)}"
        if bucket is None:
            bucket = server.shared_bucket(versioned=versioned, object_lock=lock_bucket)
            options.setdefault("prefix", name)
        prefix = env_prefix(name)
        monkeypatch.setenv(prefix + "ACCESS_KEY", server.access_key)
        monkeypatch.setenv(prefix + "SECRET_KEY", secret if secret is not None else server.secret_key)
        spec = StorageSpec(name, kind, {"endpoint": endpoint or server.endpoint, "bucket": bucket, **options})
        from storage.secrets import Secrets

        return build_backend(spec, Path("/nonexistent"), Secrets(Path("/nonexistent/storage-secrets.toml")))

    make.kind = kind  # type: ignore[attr-defined]
    return make
