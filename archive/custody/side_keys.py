"""Signing keys of the archive's own besides the log key (receipts, bundles): one pattern, written once.

Each such key is a C2SP note signer named `<origin><suffix>` (never the log's
origin, so nothing it signs opens as a checkpoint), kept in `keys/` (the
signer 0600, its vkey published beside it), and sealed on every storage site
to the archive's recipients with its vkey beside it, so a custodian who
rebuilds the catalog from a site goes on signing under the key people pinned.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archive.config import ConfigError, Settings
from archive.custody.checkpoint import Signer, _locked, write_new

if TYPE_CHECKING:
    from archive.age import Identity, Recipient
    from archive.context import Archive
    from storage.base import Backend

RETRY_SECONDS = 60.0  # a site that could not take the sealed key is tried again after this long, not at every use


@dataclass
class SideKey:
    """One side key's names (`what` says what it signs, for messages) and this process's cache of it."""

    what: str  # "receipts", "bundles"
    suffix: str  # "/receipts"
    signing_key: str  # file name in keys/
    vkey: str  # file name in keys/
    sealed_key: str  # path on each site
    site_vkey: str  # path on each site
    error: type[Exception] = ValueError  # raised when a site's sealed key cannot be opened
    retry_seconds: float = RETRY_SECONDS
    _held: dict[Path, tuple[tuple[int, int], Signer]] = field(default_factory=dict, repr=False)
    _sealed_on: set[tuple[Path, str]] = field(default_factory=set, repr=False)
    _failed_at: dict[tuple[Path, str], float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def key_name(self, origin: str) -> str:
        """The key's name for a log origin: never the origin itself."""
        return origin + self.suffix

    def ensure(self, settings: Settings, origin: str) -> Signer:
        """The signer, created on first use; keys/<signing_key> (0600) and keys/<vkey>."""
        name = self.key_name(origin)
        path = settings.keys_dir / self.signing_key
        with _locked(settings.keys_dir):
            if path.exists():
                try:
                    signer = Signer.decode(path.read_text(encoding="ascii"))
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ConfigError(f"{path}: {exc}") from exc
                if signer.name != name:
                    raise ConfigError(f"{path} signs {self.what} for {signer.name!r}, but this archive's {self.what} "
                                      f"are {name!r} (the log origin changed?)")
            else:
                signer = Signer.generate(name)
                write_new(path, signer.encode() + "\n")
            vkey_path = settings.keys_dir / self.vkey
            if not vkey_path.exists() or vkey_path.read_text(encoding="ascii").strip() != signer.verifier.encode():
                tmp = vkey_path.with_suffix(".tmp")
                tmp.write_text(signer.verifier.encode() + "\n", encoding="ascii")
                os.replace(tmp, vkey_path)
        return signer

    def install(self, keys_dir: Path, signer: Signer) -> None:
        """Put a recovered signer into a new home's keys/ (a rebuild), unless one is there."""
        if not (keys_dir / self.signing_key).exists():
            write_new(keys_dir / self.signing_key, signer.encode() + "\n")
        (keys_dir / self.vkey).write_text(signer.verifier.encode() + "\n", encoding="ascii")

    def signer(self, archive: Archive) -> Signer:
        """The signer, read once per process (again if the key file changes), and sealed onto each site."""
        from archive.custody.service import log_signer

        path = archive.settings.keys_dir / self.signing_key
        with self._lock:
            try:
                stat = path.stat()
                signature = (stat.st_ino, stat.st_mtime_ns)
            except FileNotFoundError:
                signature = (0, 0)
            held = self._held.get(path)
            if held is None or held[0] != signature:
                signer = self.ensure(archive.settings, log_signer(archive).name)
                stat = path.stat()
                held = self._held[path] = ((stat.st_ino, stat.st_mtime_ns), signer)
        self.seal_on_sites(archive, held[1])
        return held[1]

    def seal(self, signer: Signer, recipients: list[Recipient]) -> bytes:
        """The signer, age-encrypted: a seized site cannot sign, a custodian can recover the key."""
        from archive.age import encrypt_bytes

        return encrypt_bytes((signer.encode() + "\n").encode("ascii"), recipients)

    def seal_on_sites(self, archive: Archive, signer: Signer) -> None:
        """Each site that lacks it gets the sealed key and its vkey, once; a site that cannot take it now is
        tried again `retry_seconds` later (signing never fails, nor waits on a site that is down, for it)."""
        keys_dir = archive.settings.keys_dir
        try:
            backends = list(archive.backends.values())
        except Exception:  # noqa: BLE001 - no configuration yet: nothing to seal onto
            return
        for backend in backends:
            place = (keys_dir, backend.name)
            failed = self._failed_at.get(place)
            if place in self._sealed_on or (failed is not None and time.monotonic() - failed < self.retry_seconds):
                continue
            try:
                if backend.stat(self.sealed_key) is None:
                    backend.put_bytes(self.sealed_key, self.seal(signer, archive.recipients()))
                if backend.stat(self.site_vkey) is None:
                    backend.put_bytes(self.site_vkey, (signer.verifier.encode() + "\n").encode("ascii"))
            except Exception:  # noqa: BLE001 - unavailable now; tried again later
                with self._lock:
                    self._failed_at[place] = time.monotonic()
                continue
            with self._lock:
                self._sealed_on.add(place)
                self._failed_at.pop(place, None)

    def unseal(self, backend: Backend, identities: list[Identity]) -> Signer | None:
        """The signer a site keeps sealed, or None when the site has none (an older site)."""
        from archive.age import AgeError, decrypt_bytes

        if backend.stat(self.sealed_key) is None:
            return None
        with backend.open_reader(self.sealed_key) as stream:
            sealed = bytes(stream.read())
        try:
            return Signer.decode(decrypt_bytes(sealed, identities).decode("ascii").strip())
        except (AgeError, ValueError, UnicodeDecodeError) as exc:
            raise self.error(f"{self.sealed_key} on {backend.name!r} cannot be opened: {exc}") from exc
