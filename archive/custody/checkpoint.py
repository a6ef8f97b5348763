"""Signing checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519 keys in the home.

A checkpoint body is three lines, each ending in a newline:

    <origin>
    <tree size, decimal>
    <root hash, base64>

and the signed note adds a blank line and `— <key name> <base64(key id || signature)>`.
The key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key),
so the same key files work with Go's `golang.org/x/mod/sumdb/note` and with
the witnesses of the transparency-dev ecosystem. Checking a note lives in
verify.py, apart from this signing side.
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from archive.config import ConfigError, Settings
from archive.custody.verify import ED25519, Verifier, key_id, valid_key_name

SIGNING_KEY_NAME = "log-signing.key"
VKEY_NAME = "log.vkey"
ORIGIN_PREFIX = "evidence-archive/"


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The C2SP tlog-checkpoint text that gets signed (no extension lines)."""
    if not valid_key_name(origin):
        raise ValueError(f"origin {origin!r} must be non-empty, without spaces or '+'")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


@dataclass(frozen=True)
class Signer:
    name: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def public_bytes(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_bytes)

    def sign_note(self, text: str) -> str:
        """The signed note: text, a blank line, one signature line."""
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("note text must end in one newline and hold no blank line")
        signature = self.key.sign(text.encode("utf-8"))
        blob = base64.b64encode(key_id(self.name, self.public_bytes) + signature).decode("ascii")
        return f"{text}\n\u2014 {self.name} {blob}\n"

    def encode(self) -> str:
        """Go sumdb/note's signer-key text: PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>."""
        seed = self.key.private_bytes_raw()
        ident = key_id(self.name, self.public_bytes).hex()
        return f"PRIVATE+KEY+{self.name}+{ident}+{base64.b64encode(ED25519 + seed).decode('ascii')}"

    @classmethod
    def decode(cls, text: str) -> Signer:
        text = text.strip()
        parts = text.removeprefix("PRIVATE+KEY+").split("+", 2)  # base64 may hold '+' too
        if not text.startswith("PRIVATE+KEY+") or len(parts) != 3:
            raise ValueError("not a signed-note signer key (PRIVATE+KEY+name+id+key)")
        name, ident, blob = parts[0], parts[1], base64.b64decode(parts[2], validate=True)
        if blob[:1] != ED25519 or len(blob) != 33:
            raise ValueError("signer key is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(blob[1:]))
        if key_id(name, signer.public_bytes).hex() != ident:
            raise ValueError("signer key id does not match its key")
        return signer


def log_settings(settings: Settings) -> dict[str, object]:
    """The config's [log] section (created empty when missing)."""
    section = settings.extra.setdefault("log", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{settings.config_path}: [log] must be a table")
    return section


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / ".log-key.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_new(path: Path, text: str, mode: int = 0o600) -> None:
    """Create a file that must not exist yet (a key), durably, readable by its owner only by default."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def ensure_log_key(settings: Settings) -> Signer:
    """The archive's checkpoint signer, created (with a unique origin) on first use.

    The private key goes to keys/log-signing.key (mode 0600), the public
    verifier key to keys/log.vkey for anyone who checks checkpoints, and the
    origin to the config's [log] section. `evidence init` may call this.
    """
    path = settings.keys_dir / SIGNING_KEY_NAME
    with _locked(settings.keys_dir):
        section = log_settings(settings)
        origin = section.get("origin")
        if path.exists():
            try:
                signer = Signer.decode(path.read_text(encoding="ascii"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            if origin is not None and origin != signer.name:
                raise ConfigError(f"{path} signs for {signer.name!r} but the config's log origin is {origin!r}")
        else:
            if origin is None:
                origin = ORIGIN_PREFIX + secrets.token_hex(16)
            signer = Signer.generate(str(origin))
            write_new(path, signer.encode() + "\n")
        if section.get("origin") != signer.name:
            section["origin"] = signer.name
            settings.save()
        vkey_path = settings.keys_dir / VKEY_NAME
        if not vkey_path.exists() or vkey_path.read_text(encoding="ascii").strip() != signer.verifier.encode():
            tmp = vkey_path.with_suffix(".tmp")
            tmp.write_text(signer.verifier.encode() + "\n", encoding="ascii")
            os.replace(tmp, vkey_path)
    return signer
