"""The access identity and the catalog key: create, protect with a passphrase, unlock, lock, status.

Why these keys exist and where they live is `archive.keys`'s docstring; this
module holds the use cases. `create_secret_keys` makes them (at `init`, or for
an older home at `keys add-access`), unwrapped, as the embedded default keeps
them. `protect` wraps both with one passphrase (age passphrase files, so the
`age` tool alone recovers them) and removes the unwrapped files. `unlock`
unwraps them into this process and into the machine's RAM directory for this
user's other processes of the archive (a running worker or server picks them
up at its next use case); `lock` removes that directory. Passphrases and keys
never appear in a result, an event, a log line or an error message.
The preview identity (`create_preview_key`) is wrapped and unlocked with
them; a home made before it existed goes on without it until `keys add-access`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys
from archive.keys.files import (
    ACCESS_KEY_NAME,
    ACCESS_PUB_NAME,
    OPTIONAL_NAMES,
    PREVIEW_KEY_NAME,
    PREVIEW_PUB_NAME,
    SECRET_NAMES,
    wrapped_name,
    write_secret,
)
from archive.services.errors import Locked, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive


@dataclass
class CreatedKeys:
    access_recipient: str
    access_key: str = ACCESS_KEY_NAME
    catalog_key: str = CATALOG_KEY_NAME
    created: list[str] = field(default_factory=list)  # the file names made now


def create_secret_keys(keys_dir: Path) -> CreatedKeys:
    """Make whichever of the access identity and the catalog key is missing, unwrapped in `keys_dir`."""
    from archive.age import Identity
    from archive.custody.checkpoint import write_new

    created: list[str] = []
    access, pub = keys_dir / ACCESS_KEY_NAME, keys_dir / ACCESS_PUB_NAME
    if not access.exists() and not (keys_dir / wrapped_name(ACCESS_KEY_NAME)).exists():
        identity = Identity.generate()
        write_new(access, f"# access identity (age): opens originals for reads; public key: {identity.recipient}\n"
                          f"{identity}\n")
        pub.write_text(f"{identity.recipient}\n", encoding="utf-8")
        created.append(ACCESS_KEY_NAME)
    elif not pub.is_file():
        if not access.is_file():
            raise Locked(f"{pub} is missing and the access identity is wrapped: unlock it to read its public key")
        from archive.context import _parse_identities

        pub.write_text(f"{_parse_identities(access.read_bytes())[0].recipient}\n", encoding="utf-8")
    catalog = keys_dir / CATALOG_KEY_NAME
    if not catalog.exists() and not (keys_dir / wrapped_name(CATALOG_KEY_NAME)).exists():
        write_new(catalog, CatalogKeys.generate().encode())
        created.append(CATALOG_KEY_NAME)
    return CreatedKeys(access_recipient=pub.read_text(encoding="utf-8").strip(), created=created)


def create_preview_key(keys_dir: Path) -> bool:
    """Make the preview identity (unwrapped) when it is missing; whether it was made now.

    Kept apart from the access identity: a server that shows thumbnails holds
    a key that opens thumbnails, never originals. A wrapped one whose public
    half was lost gets it back at the next unwrapped sight only (previews are
    not made meanwhile: `KeyRing.preview_recipient` is None).
    """
    from archive.age import Identity
    from archive.custody.checkpoint import write_new

    secret, pub = keys_dir / PREVIEW_KEY_NAME, keys_dir / PREVIEW_PUB_NAME
    if not secret.exists() and not (keys_dir / wrapped_name(PREVIEW_KEY_NAME)).exists():
        identity = Identity.generate()
        write_new(secret, f"# preview identity (age): opens thumbnails and poster frames only; public key: "
                          f"{identity.recipient}\n{identity}\n")
        pub.write_text(f"{identity.recipient}\n", encoding="utf-8")
        return True
    if not pub.is_file() and secret.is_file():
        from archive.context import _parse_identities

        pub.write_text(f"{_parse_identities(secret.read_bytes())[0].recipient}\n", encoding="utf-8")
    return False


@dataclass
class Protected:
    wrapped: list[str]  # paths of the passphrase files
    removed: list[str]  # paths of the unwrapped files removed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def protect(archive: Archive, passphrase: str) -> Protected:
    """Wrap the access identity and the catalog key with `passphrase`, then remove the unwrapped files.

    Each wrapped file is opened again before its unwrapped file goes, so a
    fault can never leave a key only in a file nobody can open. A key already
    wrapped must open with the same passphrase (both are unlocked together).
    Resumable: a run cut short leaves each key unwrapped, wrapped, or both.
    """
    from archive.keys.wrapping import check_new_passphrase, unwrap, wrap

    check_new_passphrase(passphrase)
    keys = archive.settings.keys_dir
    work_factor = archive.runtime.keys.work_factor
    result = Protected([], [])
    for name in SECRET_NAMES:
        plain, sealed = keys / name, keys / wrapped_name(name)
        if not plain.is_file():
            if not sealed.is_file() and name in OPTIONAL_NAMES:
                continue  # a home made before previews: `keys add-access` makes it, a later `protect` wraps it
            if not sealed.is_file():
                raise ServiceError(f"neither {name} nor {sealed.name} is in {keys}: run `evidence keys add-access` "
                                   "to create the missing keys")
            unwrap(sealed.read_bytes(), passphrase, sealed.name)  # the same passphrase for both keys
            continue
        data = plain.read_bytes()
        blob = wrap(data, passphrase, work_factor)
        if unwrap(blob, passphrase, sealed.name) != data:
            raise ServiceError(f"{sealed.name} did not open to the key it wraps: nothing removed")
        write_secret(sealed, blob)
        plain.unlink()
        result.wrapped.append(str(sealed))
        result.removed.append(str(plain))
    archive.runtime.keys.forget()
    return result


@dataclass
class Unlocked:
    keys: list[str]  # the key files unlocked
    ram_dir: str | None  # where this user's other processes find them (None: this process only)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unlock(archive: Archive, passphrase: str, *, share: bool = True) -> Unlocked:
    """Unwrap the keys into this process and, with `share`, into the RAM directory for this user's other processes.

    Raises WrongPassphrase (nothing unlocked), `Locked` when there is nothing
    wrapped, ServiceError when the RAM directory is not private RAM.
    """
    from archive.keys import ramdir

    ring = archive.runtime.keys
    keys = archive.settings.keys_dir
    if all((keys / name).is_file() or (name in OPTIONAL_NAMES and not (keys / wrapped_name(name)).is_file())
           for name in SECRET_NAMES):
        return Unlocked(list(SECRET_NAMES), None, note=f"the keys are kept unwrapped in {keys}: nothing to unlock "
                                                         "(`evidence keys protect` wraps them)")
    files = ring.unlock(passphrase)
    if not share:
        return Unlocked(sorted(files), None)
    try:
        where = ramdir.publish(ring.archive_id, files)
    except (ramdir.RamDirError, OSError) as exc:
        raise ServiceError(f"not unlocked for other processes: {exc}") from None
    return Unlocked(sorted(files), str(where))


@dataclass
class LockResult:
    ram_dir: str
    removed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lock(archive: Archive) -> LockResult:
    """Remove the unlocked keys from the RAM directory: every process of this archive refuses reads again
    at its next use case (one unlocked by its own passphrase stays unlocked until it ends)."""
    from archive.keys import ramdir

    ring = archive.runtime.keys
    where = ramdir.ram_dir(ring.archive_id)
    removed = ramdir.remove(ring.archive_id)
    ring.forget()
    return LockResult(str(where), removed)


@dataclass
class KeyPlace:
    name: str
    at_rest: str  # "unwrapped" | "wrapped" | "absent" (in keys/)
    in_ram: bool  # unlocked in the RAM directory
    usable_here: str | None  # where this process finds it, or None: locked here

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KeyStatus:
    keys: list[KeyPlace]
    access_recipient: str | None
    access_in_recipients: bool  # new originals are encrypted to it
    ram_dir: str
    unlocked: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "keys": [k.as_dict() for k in self.keys]}


def status(archive: Archive) -> KeyStatus:
    """Where each key is kept and whether this process can use it (nothing secret in the answer)."""
    from archive.keys import ramdir

    ring = archive.runtime.keys
    keys = archive.settings.keys_dir
    places = []
    for name in SECRET_NAMES:
        at_rest = "unwrapped" if (keys / name).is_file() else "wrapped" if (keys / wrapped_name(name)).is_file() \
            else "absent"
        try:
            usable = ring.where(name)
        except ServiceError as exc:
            usable = None
            archive.runtime.warnings.append(f"{name}: {exc}")
        places.append(KeyPlace(name, at_rest, ramdir.held_path(ring.archive_id, name) is not None, usable))
    access = ring.access_recipient()
    return KeyStatus(
        keys=places, access_recipient=access, access_in_recipients=access in archive.config.recipients,
        ram_dir=str(ramdir.ram_dir(ring.archive_id)), unlocked=all(p.usable_here for p in places),
    )
