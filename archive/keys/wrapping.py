"""Passphrases and the key files they wrap (age passphrase encryption).

Why age: a wrapped key is an ordinary age passphrase file, so a custodian can
open `access.key.age` with `age -d` alone, without this software. Why one
passphrase for both keys: they have the same custody and are unlocked together.

A passphrase comes from a prompt (the CLI's business) or from a file given by
`--passphrase-file` or `EVIDENCE_PASSPHRASE_FILE` (its first line, for
automation); it is never logged, printed or put in an error message.
"""

from __future__ import annotations

import os
from pathlib import Path

from archive.age import SCRYPT_WORK_FACTOR, AgeError, Passphrase, decrypt_bytes, encrypt_bytes
from archive.services.errors import CheckFailed, ServiceError

PASSPHRASE_FILE_ENV = "EVIDENCE_PASSPHRASE_FILE"
MIN_PASSPHRASE = 8


class WrongPassphrase(CheckFailed):
    """The passphrase does not open the wrapped keys."""


def passphrase_from_file(path: Path) -> str:
    """The passphrase in a file: its first line, without the line ending.

    Refused when others may read or change the file (as ssh refuses such keys):
    a passphrase anyone on the machine can read protects nothing.
    """
    try:
        if path.stat().st_mode & 0o077:
            raise ServiceError(f"the passphrase file {path} can be read or changed by others: chmod 600 it")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"cannot read the passphrase file {path} ({type(exc).__name__})") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise ServiceError(f"the passphrase file {path} is empty")
    return line


def passphrase_from_env() -> str | None:
    """The passphrase named by `EVIDENCE_PASSPHRASE_FILE`, or None when it is not set."""
    path = os.environ.get(PASSPHRASE_FILE_ENV)
    return passphrase_from_file(Path(path)) if path else None


def check_new_passphrase(text: str) -> None:
    if len(text) < MIN_PASSPHRASE:
        raise ServiceError(f"a passphrase of fewer than {MIN_PASSPHRASE} characters protects little")


def wrap(data: bytes, passphrase: str, work_factor: int = SCRYPT_WORK_FACTOR) -> bytes:
    """`data` as an age passphrase file."""
    return encrypt_bytes(data, [Passphrase.of(passphrase, work_factor)])


def unwrap(blob: bytes, passphrase: str, what: str) -> bytes:
    """The key wrapped in `blob`; WrongPassphrase if the passphrase does not open it."""
    try:
        return decrypt_bytes(blob, [Passphrase.of(passphrase)])
    except AgeError as exc:
        if "wrong passphrase" in str(exc):
            raise WrongPassphrase(f"wrong passphrase: it does not open {what}") from None
        raise ServiceError(f"{what} is not a passphrase-wrapped key ({exc})") from None
