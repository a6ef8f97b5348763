"""Checking a bundle file as received: a folder, a .zip or .tar, or either age-encrypted. No catalog, no network.

The checks themselves are the standalone `verify_script` (shipped in every bag
as verify.py), so what the archive's own command reports is exactly what a
recipient's copy of verify.py reports. Here only the reading: zip and tar
members are read in place (never extracted), and an encrypted bundle is
decrypted once with the given identity into a private temporary file that is
deleted afterwards.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from archive.exports.verify_script import FolderReader, Report, verify_bag

AGE_MAGIC = b"age-encryption.org/v1"


class BundleUnreadable(Exception):
    """The bundle (or a key for it) cannot be read at all: an error in use, not a failed check."""


def _duplicates(names: list[str]) -> list[str]:
    """Member names a container holds more than once (after normalising `./`, `//` and a trailing `/`): verify-bundle
    would read one copy while an extractor keeps the other."""
    seen: set[str] = set()
    twice: set[str] = set()
    for name in names:
        key = posixpath.normpath(name.rstrip("/") or "/")
        (twice if key in seen else seen).add(key)
    return sorted(twice)


class _Archived:
    """A zip's or tar's members under one top folder, as paths relative to that folder."""

    def __init__(self, members: dict[str, Any], opener: Any, duplicates: list[str] | None = None) -> None:
        self.duplicates = duplicates or []
        tops = {name.split("/", 1)[0] for name in members}
        if len(tops) != 1:
            raise BundleUnreadable(f"a bundle holds one top folder, this one holds {len(tops)}")
        self.top = tops.pop()
        self.members = {name.split("/", 1)[1]: m for name, m in members.items() if "/" in name}
        self.opener = opener

    def names(self) -> list[str]:
        return sorted(self.members)

    def open(self, path: str) -> BinaryIO:
        stream: BinaryIO = self.opener(self.members[path])
        return stream


@contextmanager
def _reader(path: Path) -> Iterator[FolderReader | _Archived]:
    if path.is_dir():
        tops = [p for p in path.iterdir() if p.is_dir()]
        if (path / "bagit.txt").is_file() or len(tops) != 1:
            yield FolderReader(str(path))
        else:
            yield FolderReader(str(tops[0]))
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            members = {i.filename: i for i in infos if not i.is_dir()}
            yield _Archived(members, archive.open, _duplicates([i.filename for i in infos]))
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            files = {m.name: m for m in tar.getmembers() if m.isfile()}
            if len({m.name for m in tar.getmembers()} - set(files) - _folders(files)):
                raise BundleUnreadable("the tar holds links or devices: a bundle holds plain files only")

            def extract(member: tarfile.TarInfo) -> IO[bytes]:
                stream = tar.extractfile(member)
                return stream if stream is not None else io.BytesIO()
            yield _Archived(files, extract, _duplicates([m.name for m in tar.getmembers()]))
    except tarfile.TarError as exc:
        raise BundleUnreadable(f"{path} is not a bag folder, a zip or a tar") from exc


def _folders(files: dict[str, Any]) -> set[str]:
    return {"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)}


@contextmanager
def _decrypted(path: Path, identity_path: Path | None) -> Iterator[Path]:
    """The path to read: the file itself, or its plaintext in a private temp file (removed on exit)."""
    from archive.age import AgeError, Identity, decrypt_stream

    if path.is_dir():
        yield path
        return
    try:
        with open(path, "rb") as stream:
            encrypted = stream.read(len(AGE_MAGIC)) == AGE_MAGIC
    except OSError as exc:
        raise BundleUnreadable(f"cannot read {path}: {exc.strerror}") from exc
    if not encrypted:
        yield path
        return
    if identity_path is None:
        raise BundleUnreadable(f"{path} is age-encrypted: give the recipient's key with --identity")
    try:
        identities = Identity.read(identity_path)
    except (OSError, ValueError, AgeError) as exc:
        raise BundleUnreadable(f"the identity {identity_path} does not parse: {exc}") from exc
    fd, name = tempfile.mkstemp(prefix=".evidence-bundle-", suffix=".plain")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as stream:
            try:
                for chunk in decrypt_stream(stream, identities):
                    out.write(chunk)
            except AgeError as exc:
                raise BundleUnreadable(f"{path} does not decrypt with {identity_path}: {exc}") from exc
        yield Path(name)
    finally:
        os.unlink(name)


def verify_bundle(path: Path | str, *, identity_path: Path | str | None = None, vkey: str | None = None,
                  checkpoint: str | None = None) -> Report:
    """Check a bundle file or folder; raises `BundleUnreadable` when it cannot be read at all.

    `vkey`: the text of the archive's log verifier key (one or more vkey lines,
    from a trusted channel); `checkpoint`: a checkpoint (same size) or the archive's consistency proof as JSON, or the
    JSON of `evidence log consistency --json`.
    """
    path = Path(path)
    if not path.exists():
        raise BundleUnreadable(f"{path} does not exist")
    with _decrypted(path, Path(identity_path) if identity_path else None) as plain, _reader(plain) as reader:
        if isinstance(reader, FolderReader) and not os.path.isfile(os.path.join(reader.root, "bagit.txt")):
            raise BundleUnreadable(f"{path} is not a bag (no bagit.txt)")
        if isinstance(reader, _Archived) and reader.duplicates:
            refused = Report()
            for name in reader.duplicates:
                refused.fail(name, "the container holds more than one member of this name (an extractor may "
                             "keep another copy than the one checked): refused")
            return refused
        try:
            return verify_bag(reader, vkey_text=vkey, checkpoint_text=checkpoint)
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise BundleUnreadable(f"{path} cannot be read through: {exc}") from exc
