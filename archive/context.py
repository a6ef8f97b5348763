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
from typing import TYPE_CHECKING, Any

from archive.config import ConfigError, RuntimeConfig, Settings, check_actor, load_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archive.age import Identity, Recipient
    from archive.custody.checkpoint import Signer
    from archive.keys.catalog import CatalogKeys
    from storage.base import Backend
    from storage.registry import BackendPool

# PREMIS has no event type for this; it is the archive's own.
CONFIGURATION_MOVED = "configuration moved"


class KeyRing:
    """Public keys, the log's signing key, and the secret keys this process may use (see `archive.keys`).

    The access identity and the catalog key are looked for at every use, in
    this order: unwrapped in `keys/` (the embedded default); wrapped in `keys/`
    when this process holds the passphrase (`unlock`, or `EVIDENCE_PASSPHRASE_FILE`);
    this archive's RAM directory (`evidence unlock`). Each place costs one
    `stat` per use and is read again only when it changed, so a running worker
    or server picks up a later `evidence unlock` (and a rotation's new key
    version) at its next use case, and refuses again after `evidence lock`.
    A process unlocked with the passphrase stays unlocked until it ends.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.RLock()
        self._recipients: tuple[tuple[str, ...], list[Recipient]] | None = None
        self._signer: Signer | None = None
        self._passphrase: str | None = None  # held after an in-process unlock, for re-wrapping (store_catalog)
        self._held: dict[Path, tuple[tuple[int, int, int], Any]] = {}  # path -> (file signature, parsed key)
        self._tried_env = False

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

    @property
    def archive_id(self) -> str:
        """This archive's id (the log origin's suffix): it names the RAM directory."""
        origin = str(self._settings.section("log").get("origin") or "")
        if origin:
            return origin.rsplit("/", 1)[-1]
        import hashlib

        return "home-" + hashlib.sha256(str(self._settings.home).encode()).hexdigest()[:32]

    def _places(self, name: str) -> list[tuple[str, Path, bool]]:
        """(where, path, wrapped) for each place key file `name` may be held, in the order they are tried."""
        from archive.keys import ramdir
        from archive.keys.files import wrapped_name

        keys = self._settings.keys_dir
        places = [(f"unwrapped in {keys}", keys / name, False)]
        if self._passphrase is not None:
            places.append(("unlocked in this process", keys / wrapped_name(name), True))
        try:
            ram = ramdir.ram_dir(self.archive_id)
            places.append((f"unlocked in RAM ({ram})", ram / name, False))
        except ramdir.RamDirError:
            pass
        return places

    def _read(self, name: str, path: Path, wrapped: bool) -> bytes:
        from archive.keys import ramdir
        from archive.keys.wrapping import unwrap
        from archive.services.errors import Locked

        if wrapped:
            assert self._passphrase is not None
            return unwrap(path.read_bytes(), self._passphrase, path.name)
        if path.parent == self._settings.keys_dir:
            return path.read_bytes()
        try:
            data = ramdir.read(self.archive_id, name)
        except ramdir.RamDirError as exc:
            raise Locked(f"{exc}; run `evidence lock` and `evidence unlock` again") from None
        if data is None:
            raise FileNotFoundError(path)
        return data

    def _find(self, name: str) -> tuple[Any, str] | None:
        """The parsed key `name` from the first place holding it, and where; None when none does."""
        from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys
        from archive.keys.files import signature
        from archive.services.errors import ServiceError

        def parse(data: bytes) -> Any:
            return CatalogKeys.parse(data.decode("ascii")) if name == CATALOG_KEY_NAME else _parse_identities(data)

        with self._lock:
            self._unlock_from_env()
            for where, path, wrapped in self._places(name):
                sig = signature(path)
                if sig is None:
                    self._held.pop(path, None)
                    continue
                held = self._held.get(path)
                if held is None or held[0] != sig:
                    try:
                        data = self._read(name, path, wrapped)
                    except FileNotFoundError:
                        continue  # removed since the stat (`evidence lock`)
                    try:
                        held = (sig, parse(data))
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise ServiceError(f"{path} holds no usable key ({type(exc).__name__})") from None
                    self._held[path] = held
                return held[1], where
            return None

    def _locked(self, what: str) -> Exception:
        from archive.services.errors import Locked

        return Locked(f"{what} is locked in this process: a custodian must run `evidence unlock` "
                      "(or start it with --unlock or EVIDENCE_PASSPHRASE_FILE)")

    def catalog(self) -> CatalogKeys:
        """The catalog key (every held version); `Locked` when this process has none."""
        from archive.keys.catalog import CATALOG_KEY_NAME

        found = self._find(CATALOG_KEY_NAME)
        if found is None:
            raise self._locked("the catalog key")
        return found[0]  # type: ignore[no-any-return]

    def access_identities(self) -> list[Identity]:
        """The access identity (the one reads use); `Locked` when this process has none."""
        from archive.keys.files import ACCESS_KEY_NAME

        found = self._find(ACCESS_KEY_NAME)
        if found is None:
            raise self._locked("the access identity")
        return list(found[0])

    def access_recipient(self) -> str | None:
        """The access identity's public key (`keys/access.pub`), readable whether locked or not."""
        from archive.keys.files import ACCESS_PUB_NAME

        path = self._settings.keys_dir / ACCESS_PUB_NAME
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    def preview_identities(self) -> list[Identity]:
        """The preview identity (it opens the web pages' thumbnails, never originals); `Locked` when absent here."""
        from archive.keys.files import PREVIEW_KEY_NAME

        found = self._find(PREVIEW_KEY_NAME)
        if found is None:
            raise self._locked("the preview identity")
        return list(found[0])

    def preview_recipient(self) -> str | None:
        """The preview identity's public key (`keys/preview.pub`), readable whether locked or not."""
        from archive.keys.files import PREVIEW_PUB_NAME

        path = self._settings.keys_dir / PREVIEW_PUB_NAME
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    def unlocked(self) -> bool:
        """Whether this process can use both the access identity and the catalog key now."""
        from archive.services.errors import ServiceError

        try:
            self.access_identities()
            self.catalog()
        except ServiceError:
            return False
        return True

    def where(self, name: str) -> str | None:
        """Where this process finds key file `name` now (None: it cannot use it)."""
        found = self._find(name)
        return found[1] if found is not None else None

    def unlock(self, passphrase: str) -> dict[str, bytes]:
        """Unwrap the wrapped keys in `keys/` into this process; the unwrapped key files, by name.

        Raises WrongPassphrase (nothing is held then), `Locked` when there is
        nothing wrapped to unlock. Keys kept unwrapped need no unlocking.
        """
        from archive.keys.files import OPTIONAL_NAMES, SECRET_NAMES, wrapped_name
        from archive.keys.wrapping import unwrap
        from archive.services.errors import Locked

        keys = self._settings.keys_dir
        opened: dict[str, bytes] = {}
        for name in SECRET_NAMES:
            wrapped = keys / wrapped_name(name)
            if wrapped.is_file():
                opened[name] = unwrap(wrapped.read_bytes(), passphrase, wrapped.name)
            elif (keys / name).is_file():
                opened[name] = (keys / name).read_bytes()
            elif name in OPTIONAL_NAMES:
                continue  # a home made before it existed: the others unlock all the same
            else:
                raise Locked(f"neither {name} nor {wrapped_name(name)} is in {keys}: nothing to unlock "
                             "(`evidence keys add-access` creates missing keys)")
        with self._lock:
            self._passphrase = passphrase
            self._held = {path: held for path, held in self._held.items() if path.parent != keys}
        return opened

    def holds_passphrase(self) -> bool:
        return self._passphrase is not None

    def _unlock_from_env(self) -> None:
        """Unlock this process once from `EVIDENCE_PASSPHRASE_FILE` when it is set and the keys are wrapped."""
        if self._tried_env or self._passphrase is not None:
            return
        self._tried_env = True
        from archive.keys.files import SECRET_NAMES, wrapped_name
        from archive.keys.wrapping import passphrase_from_env

        keys = self._settings.keys_dir
        if not any((keys / wrapped_name(name)).is_file() for name in SECRET_NAMES):
            return
        passphrase = passphrase_from_env()
        if passphrase is not None:
            self.unlock(passphrase)

    def store_catalog(self, keys: CatalogKeys, passphrase: str | None = None) -> list[str]:
        """Write a new version of the catalog key wherever it is kept, atomically; where it went.

        The unwrapped file (embedded default) or the wrapped one (re-wrapped
        with the passphrase this process holds, or `passphrase`), then the RAM
        directory if the key is unlocked there. The durable copy goes first: a
        crash between the two leaves it on disk, and `evidence unlock` again
        brings the RAM directory up to date.
        """
        from archive.keys import ramdir
        from archive.keys.catalog import CATALOG_KEY_NAME
        from archive.keys.files import wrapped_name, write_secret
        from archive.keys.wrapping import unwrap, wrap
        from archive.services.errors import Locked

        data = keys.encode().encode("ascii")
        home = self._settings.keys_dir
        plain, wrapped = home / CATALOG_KEY_NAME, home / wrapped_name(CATALOG_KEY_NAME)
        stored: list[str] = []
        with self._lock:
            if plain.is_file():
                write_secret(plain, data)
                stored.append(str(plain))
            elif wrapped.is_file():
                secret = passphrase or self._passphrase
                if secret is None:
                    raise Locked("writing the new catalog key means wrapping it again: this needs the passphrase "
                                 "(unlock this process with it, e.g. EVIDENCE_PASSPHRASE_FILE, or pass it)")
                unwrap(wrapped.read_bytes(), secret, wrapped.name)  # never re-wrap under a mistyped passphrase
                write_secret(wrapped, wrap(data, secret, self.work_factor))
                stored.append(str(wrapped))
            else:
                raise Locked(f"no catalog key file in {home} to write the new version to")
            if ramdir.held_path(self.archive_id, CATALOG_KEY_NAME) is not None:
                stored.append(str(ramdir.publish(self.archive_id, {CATALOG_KEY_NAME: data}) / CATALOG_KEY_NAME))
            self._held.clear()
        return stored

    @property
    def work_factor(self) -> int:
        """The scrypt work factor keys are wrapped with (`[keys] passphrase_work_factor`, default the age tool's)."""
        from archive.age import SCRYPT_WORK_FACTOR

        return int(self._settings.section("keys").get("passphrase_work_factor", SCRYPT_WORK_FACTOR))

    def forget(self) -> None:
        """Drop every secret key this process holds (after `evidence lock`, or before exiting)."""
        with self._lock:
            self._passphrase = None
            self._held.clear()

    def signer(self) -> Signer:
        with self._lock:
            if self._signer is None:
                from archive.custody.checkpoint import ensure_log_key

                self._signer = ensure_log_key(self._settings)
            return self._signer


def _parse_identities(data: bytes) -> list[Identity]:
    """The identities in an age identity file's bytes (comments and blank lines skipped)."""
    from archive.age import AgeError, Identity

    lines = [ln.strip() for ln in data.decode("utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise ValueError("no identity in file")
    try:
        return [Identity.parse(line) for line in lines]
    except AgeError as exc:
        raise ValueError(str(exc)) from None


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
    actor_ids: dict[str, str] = field(default_factory=dict, repr=False)  # operator name -> user id
    settle_checked: bool = False  # whether this process looked for rows to settle (archive.services.settle)
    minted: set[str] = field(default_factory=set, repr=False)  # ids whose users row may wait (catalog.users)

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


def _literal_actor(name: str) -> bool:
    """`archive` (the system) or already a user id (`u-` and 16 hex digits): recorded as it is."""
    if name == "archive":
        return True
    return len(name) == 18 and name.startswith("u-") and all(c in "0123456789abcdef" for c in name[2:])


class Archive:
    """The archive as one use case sees it: who acts, the configuration at its start, the process's runtime.

    `actor_name` is who acts as given (an operator name, or `archive`); `actor`
    is what custody events and provenance record: the literal `archive`, or
    the random user id behind the name (`archive.catalog.users`), resolved on
    first use and kept for the process, so neither the log nor a seized
    catalog names a person. A name that already is a user id (a pool worker
    handed its parent's) stays as it is.
    """

    def __init__(self, runtime: Runtime, actor: str) -> None:
        self.runtime = runtime
        self.actor_name = actor
        self._engine_seen = False

    def __repr__(self) -> str:
        return f"Archive(home={str(self.runtime.home)!r})"

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, as_name: str | None = None) -> Archive:
        runtime = Runtime.open(home)
        return cls(runtime=runtime, actor=runtime.settings.actor(as_name))

    @property
    def actor(self) -> str:
        """The user id that acts (or `archive`); created, sealed, at a name's first use."""
        name = self.actor_name
        if _literal_actor(name):
            return name
        known = self.runtime.actor_ids.get(name)
        if known is None:
            known = self._resolve(name)
            self.runtime.actor_ids[name] = known
        elif known in self.runtime.minted:
            self._write_minted(known)
        return known

    def _write_minted(self, user_id: str) -> None:
        """A minted id about to be recorded: its row now, when no transaction of this process is open
        (else the transaction recording it writes it: `archive.catalog.users.write_minted`)."""
        from archive.catalog.users import is_minted, write_minted
        from archive.db import transaction

        engine = self.runtime.engine
        if getattr(engine.pool, "checkedout", lambda: 1)() == 0:
            if is_minted(user_id):
                with transaction(engine) as session:
                    write_minted(session, user_id)
            self.runtime.minted.discard(user_id)

    def _known_actor(self) -> None:
        """Find the actor's id ahead, when this process holds the catalog key (SQLAlchemy Core only:
        a command that only reads, like `list`, must not load the ORM for it)."""
        from sqlalchemy import bindparam, text

        from archive.db import read_only
        from archive.services.errors import Locked

        name = self.actor_name
        if _literal_actor(name) or name in self.runtime.actor_ids:
            return
        try:
            keys = self.runtime.keys.catalog()
        except Locked:
            # No lookup without the key, so a new id for this process: minted now, outside any transaction,
            # its pending row written only once something records it (a reading command writes none).
            from archive.catalog.secrets import sealer
            from archive.catalog.users import mint
            from archive.custody.log import utc_now

            user_id = mint(sealer(self), name, utc_now())
            self.runtime.actor_ids[name] = user_id
            self.runtime.minted.add(user_id)
            return
        query = text("SELECT id FROM users WHERE lookup IN :hashes ORDER BY created_at, id LIMIT 1").bindparams(
            bindparam("hashes", expanding=True))
        with read_only(self.runtime.engine).connect() as conn:
            found = conn.execute(query, {"hashes": keys.lookups("user-name", name)}).scalar()
        self.runtime.actor_ids[name] = str(found) if found is not None else self._resolve(name)

    def _resolve(self, name: str) -> str:
        from archive.catalog.secrets import sealer
        from archive.catalog.users import resolve
        from archive.custody.log import utc_now
        from archive.db import transaction

        keys = sealer(self)
        with transaction(self.engine) as session:
            return resolve(session, keys, name, utc_now())

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def home(self) -> Path:
        return self.runtime.home

    @property
    def engine(self) -> Engine:
        """The catalog. Its first use settles what was written locked (once per process, when unlocked)
        and resolves the actor's user id, before the use case opens a transaction: on SQLite a
        resolution inside one would wait for the write lock that transaction holds."""
        engine = self.runtime.engine
        if not self._engine_seen:
            self._engine_seen = True  # first: both use this archive's engine too
            if not self.runtime.settle_checked:
                self.runtime.settle_checked = True
                from archive.services.settle import settle_on_open

                settle_on_open(self)
            try:
                self._known_actor()  # now, outside any transaction
            except Exception:  # noqa: BLE001 - a catalog without its configuration yet: resolved at first use
                pass
        return engine

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
