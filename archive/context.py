"""The archive as a process holds it (`Runtime`) and as one use case sees it (`Archive`).

A `Runtime` lives as long as its process (a CLI command, a worker, an API
server): the catalog engine, the pool of storage clients, parsed keys and the
clock are made once and shared. An `Archive` is made for one use case (one
command, one job, one request): who acts, and the configuration as the catalog
held it when the use case began. Every service function takes an `Archive`, so
the CLI, the worker and the HTTP API call the same code with the same rules,
and a long-running process sees every `storage add` and `policy set` at its
next use case.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from archive.config import ConfigError, RuntimeConfig, Settings, check_actor, load_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archive.age import Recipient
    from archive.custody.checkpoint import Signer
    from archive.keys.catalog import CatalogKeys
    from storage.base import Backend
    from storage.registry import BackendPool

# PREMIS has no event type for this; it is the archive's own.
CONFIGURATION_MOVED = "configuration moved"


class KeyRing:
    """Public keys and the log's signing key, parsed once per process (and again only when changed)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._recipients: tuple[tuple[str, ...], list[Recipient]] | None = None
        self._signer: Signer | None = None
        self._catalog: CatalogKeys | None = None

    def recipients(self, texts: list[str]) -> list[Recipient]:
        key = tuple(texts)
        held = self._recipients
        if held is None or held[0] != key:
            if not texts:
                raise ConfigError("no recipients configured: ingest would have no one to encrypt originals to")
            from archive.age import Recipient

            held = (key, [Recipient.parse(text) for text in texts])
            self._recipients = held
        return held[1]

    def catalog(self) -> CatalogKeys:
        """The catalog key (every held version); `Locked` when this process has none.

        Read from `keys/catalog.key` in the embedded default (see `archive.keys`).
        """
        with self._lock:
            if self._catalog is None:
                from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys
                from archive.services.errors import Locked

                path = self._settings.keys_dir / CATALOG_KEY_NAME
                if not path.is_file():
                    raise Locked("the catalog key is not unlocked here: a custodian must run `evidence unlock`")
                self._catalog = CatalogKeys.parse(path.read_text(encoding="ascii"))
            return self._catalog

    def signer(self) -> Signer:
        with self._lock:
            if self._signer is None:
                from archive.custody.checkpoint import ensure_log_key

                self._signer = ensure_log_key(self._settings)
            return self._signer


def utc_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What one process keeps for its whole life: engine, storage clients, keys, clock."""

    settings: Settings
    clock: Callable[[], datetime] = utc_clock
    _engine: Engine | None = field(default=None, repr=False)
    log_size_at_open: int = 0
    warnings: list[str] = field(default_factory=list)  # for whoever runs the process to show

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> Runtime:
        return cls(settings=load_settings(home))

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from archive.db import make_engine, migrate

            engine = make_engine(self.settings.catalog_url())
            migrate(engine)
            self._engine = engine
            self.log_size_at_open = self.log_size()
        return self._engine

    @cached_property
    def keys(self) -> KeyRing:
        return KeyRing(self.settings)

    @cached_property
    def pool(self) -> BackendPool:
        from storage.registry import BackendPool
        from storage.secrets import SECRETS_NAME, Secrets

        pool = BackendPool(self.home, Secrets(self.settings.keys_dir / SECRETS_NAME))
        pool.on_build = _sweep_staging
        return pool

    def config(self) -> RuntimeConfig:
        """The run-time configuration as the catalog holds it now (an older home's is moved in first)."""
        from sqlmodel import Session

        from archive.catalog.settings import read_config
        from archive.db import read_only, transaction

        with Session(read_only(self.engine)) as session:
            config = read_config(session)
        if config is not None:
            if self.settings.legacy and not self.warnings:
                keys = ", ".join(sorted(self.settings.legacy))
                self.warnings.append(f"{self.settings.config_path}: {keys} are ignored there; they live in the "
                                     "catalog now (evidence storage, policy, encrypt-to)")
            return config
        if not self.settings.legacy:
            raise ConfigError(
                f"the catalog ({_where(self.settings.catalog_url())}) holds no archive: it is empty or was lost; "
                "recover it from a storage site with `evidence rebuild-catalog`"
            )
        with transaction(self.engine) as session:
            config = adopt_legacy_config(self, session)
        claim_legacy_sites(self, config)
        return config

    def archive(self, actor: str) -> Archive:
        """A view for one use case, acting as `actor`, under the configuration as it is now."""
        return Archive(runtime=self, actor=check_actor(actor))

    def log_size(self) -> int:
        """How many custody events the log holds now."""
        from sqlalchemy import text

        from archive.db import read_only

        with read_only(self.engine).connect() as conn:
            return int(conn.execute(text("SELECT size FROM log_head WHERE id = 1")).scalar_one())

    def added_events(self) -> bool:
        """Whether events were appended (by anyone) since this process opened the catalog."""
        return self._engine is not None and self.log_size() > self.log_size_at_open

    def finish(self) -> str | None:
        """End a use case run by this process: sign a checkpoint over any events it added.

        Returns a warning when no checkpoint could be signed (the use case's own
        result stands; the worker signs one later).
        """
        try:
            if self.added_events():  # a command that only read loads no custody code
                from archive.custody.service import maybe_checkpoint

                maybe_checkpoint(self.archive("archive"), max_age_seconds=0)
        except Exception as exc:  # noqa: BLE001 - the command's own result must not be lost
            return f"no checkpoint issued: {exc}"
        return None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _where(url: str) -> str:
    """A catalog URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as the kind only
        return url.split(":", 1)[0]


def _sweep_staging(backend: Backend) -> None:
    """Staging files a killed process left on a local root (ciphertext only, never published)."""
    from storage.local import LocalBackend

    if isinstance(backend, LocalBackend):
        try:
            backend.sweep_staging()
        except OSError:
            pass  # an unreadable root is reported by its health check, not here


def adopt_legacy_config(runtime: Runtime, session: object) -> RuntimeConfig:
    """Move an older home's recipients, storage and policy from config.toml into the catalog, with an event.

    Runs once, in the caller's transaction; the file loses those keys after the commit.
    """
    import secrets as random

    from sqlmodel import Session

    from archive.catalog.settings import ARCHIVE_ID, POLICY, RECIPIENTS, add_site, put_setting, read_config
    from archive.config import legacy_config
    from archive.custody.log import append_event

    assert isinstance(session, Session)
    append_event(session, CONFIGURATION_MOVED, actor="archive",
                 details={"moved": "configuration from config.toml into the catalog"})
    existing = read_config(session)  # another process may have moved it while we waited for the lock
    if existing is not None:
        return existing
    settings = runtime.settings
    recipients, storage, policy = legacy_config(settings.legacy)
    origin = str(settings.section("log").get("origin") or "")
    archive_id = origin.rsplit("/", 1)[-1] if origin else random.token_hex(16)
    put_setting(session, ARCHIVE_ID, archive_id)
    put_setting(session, RECIPIENTS, recipients)
    put_setting(session, POLICY, policy.as_dict())
    for spec in storage:
        add_site(session, spec)
    session.info.setdefault("after_commit", []).append(_forget_legacy(settings))
    config = read_config(session)
    assert config is not None
    return config


def claim_legacy_sites(runtime: Runtime, config: RuntimeConfig) -> None:
    """Give an older home's sites the marker they never had, but only sites that are clearly this archive's.

    A site the catalog keeps copies on gets the marker only if one of those
    copies is there: a disk unmounted during the move shows an empty folder,
    which must stay unavailable, never be claimed. A site with no copies yet
    is claimed as it is.
    """
    from storage.base import StorageError
    from storage.markers import ensure_marker

    for spec in config.storage:
        backend = runtime.pool.get(spec, config.archive_id)
        try:
            if backend.read_marker() is None and holds_its_copies(runtime, backend):
                ensure_marker(backend, config.archive_id)
        except StorageError:
            continue  # unreachable now: it stays unavailable, and `evidence status` says why


def holds_its_copies(runtime: Runtime, backend: Backend) -> bool:
    """Whether a site without a marker visibly holds what the catalog keeps there (or nothing is kept there)."""
    from sqlmodel import Session, col, select

    from archive.catalog.items import Replica, ReplicaState
    from archive.db import read_only

    with Session(read_only(runtime.engine)) as session:
        sample = session.exec(
            select(Replica).where(Replica.backend == backend.name, Replica.state == ReplicaState.VERIFIED)
            .order_by(col(Replica.id)).limit(1)
        ).first()
    return sample is None or backend.stat(sample.object_name, sample.version_id) is not None


def _forget_legacy(settings: Settings) -> Callable[[], None]:
    def forget() -> None:
        if settings.legacy:
            settings.legacy = {}
            settings.save()

    return forget


@dataclass
class Archive:
    """The archive as one use case sees it: who acts, the configuration at its start, the process's runtime."""

    runtime: Runtime
    actor: str

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, as_name: str | None = None) -> Archive:
        runtime = Runtime.open(home)
        return cls(runtime=runtime, actor=runtime.settings.actor(as_name))

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def home(self) -> Path:
        return self.runtime.home

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @cached_property
    def config(self) -> RuntimeConfig:
        return self.runtime.config()

    def refresh(self) -> None:
        """Read the configuration again (after this use case changed it)."""
        self.__dict__.pop("config", None)
        self.__dict__.pop("backends", None)

    @cached_property
    def backends(self) -> dict[str, Backend]:
        """Every storage site, by name, in order; one whose credentials are missing reports why."""
        return self.runtime.pool.backends(self.config.storage, self.config.archive_id)

    def policy_backends(self) -> list[Backend]:
        """The sites the policy writes to, in order."""
        names = self.config.policy_names()
        missing = [name for name in names if name not in self.backends]
        if missing:
            raise ConfigError(f"the policy names storage that does not exist: {', '.join(missing)}")
        return [self.backends[name] for name in names]

    def recipients(self) -> list[Recipient]:
        """The age recipients originals are encrypted to now (parsed once per process)."""
        return self.runtime.keys.recipients(self.config.recipients)

    def for_actor(self, actor: str) -> Archive:
        return Archive(runtime=self.runtime, actor=check_actor(actor))

    def close(self) -> None:
        self.runtime.close()
