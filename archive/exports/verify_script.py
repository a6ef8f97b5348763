#!/usr/bin/env python3
"""Check an evidence bundle: `python verify.py [BAG_FOLDER] [--vkey FILE] [--checkpoint FILE] [--json]`.

Needs only Python 3.11+ and the `cryptography` package; BAG_FOLDER defaults to
the folder this file is in. Exit 0 when everything verifies, 1 when anything
fails. It checks the bag (both manifests and tag manifests, Payload-Oxum, no
file missing or extra), signature.note under bundle.vkey, checkpoint.txt under
log.vkey (or --vkey), every event against its inclusion proof, every content
and record commitment, and salts.json. The bundled keys prove nothing about
who made the bundle (a forger could replace them): only a log key from a
trusted channel (--vkey) establishes authenticity. A --checkpoint without
--vkey is checked under the bundle's own log.vkey: the bundle is then authentic
only if you got that checkpoint from a witness or the archive through a trusted
channel. A convenience: README.txt explains every check by hand.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

ORIGINALS = "data/originals/"
RECORDS = "data/records/"
CERTIFICATES = "data/records/certificates/"
CUSTODY = "data/custody/"
EVENTS = "data/custody/events/"
PROOFS = "data/custody/proofs/"
CHECKPOINT = "data/custody/checkpoint.txt"
LOG_VKEY = "data/custody/log.vkey"
BUNDLE_VKEY = "data/custody/bundle.vkey"
SALTS = "data/custody/salts.json"
SALTS_FORMAT = "evidence-salts/1"
SIGNATURE = "signature.note"
SIGNATURE_HEADER = "evidence-bundle/1"
# The tag files both tag manifests cover (signature.note signs tagmanifest-sha256.txt, so neither lists it).
TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt", "bagit-profile.json",
             "README.txt", "verify.py", "withheld.txt")
TAG_MANIFESTS = ("tagmanifest-sha256.txt", "tagmanifest-sha512.txt")
RECORD_KINDS = ("items", "incidents", "victims", "sources", "links")
CHUNK = 1 << 20


def signature_text(origin: str, export_id: str, part: int, parts: int, tagmanifest_sha256: str) -> str:
    """The text signature.note signs (a C2SP signed note under the key `<origin>/bundles`)."""
    return (f"{SIGNATURE_HEADER}\norigin {origin}\nbundle {export_id}\npart {part} of {parts}\n"
            f"tagmanifest-sha256 {tagmanifest_sha256}\n")


class Failed(Exception):
    """One check that did not hold; the message says what."""


class Reader(Protocol):
    """A bag's files, by path relative to its top folder (a folder, a zip, a tar …)."""

    def names(self) -> list[str]: ...

    def open(self, path: str) -> BinaryIO: ...


def _not_plain(mode: int) -> str | None:
    """What an entry is when it is neither a regular file nor a folder (None when it is one of those)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class FolderReader:
    """An unpacked bag. Only regular files and folders are read: anything else (a symlink, FIFO, device or
    socket) is listed in `refused` and never opened or followed."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.refused: dict[str, str] = {}

    def names(self) -> list[str]:
        found, refused = [], {}
        for top, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                full = os.path.join(top, name)
                kind = _not_plain(os.lstat(full).st_mode)
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                if kind is not None:
                    refused[rel] = kind
                elif name in files:
                    found.append(rel)
            dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(top, d), self.root).replace(os.sep, "/")
                       not in refused]
        self.refused = refused
        return sorted(found)

    def open(self, path: str) -> BinaryIO:
        full = os.path.join(self.root, *path.split("/"))
        kind = _not_plain(os.lstat(full).st_mode)
        if kind is not None or stat.S_ISDIR(os.lstat(full).st_mode):
            raise Failed(f"{path} is {kind or 'a folder'}: a bag holds regular files only")
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Failed(f"{path} is not a regular file: a bag holds regular files only")
        return os.fdopen(fd, "rb")


@dataclass
class Report:
    """What was checked (counts per kind) and every failure, each naming its file."""

    checked: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    authenticity: bool = False  # only a log key given from outside the bundle (--vkey) establishes it
    consistency: bool | None = None
    rests_on_checkpoint: bool = False  # consistent with a --checkpoint signed by the bundle's own log key

    def authenticity_state(self) -> str:
        if self.ok and self.authenticity:
            return "established by the log key given with --vkey"
        if self.ok and self.rests_on_checkpoint:
            return "rests on the checkpoint you gave"
        return "not established"

    @property
    def ok(self) -> bool:
        return not self.failures

    def count(self, kind: str, n: int = 1) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + n

    def fail(self, where: str, why: str) -> None:
        self.failures.append(f"{where}: {why}")

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": dict(self.checked), "failures": list(self.failures),
                "notes": list(self.notes), "authenticity_established": self.ok and self.authenticity,
                "authenticity": self.authenticity_state(), "consistency_checked": self.consistency,
                "verdict": self.verdict()}

    def verdict(self) -> str:
        if not self.ok:
            return f"FAILED: {len(self.failures)} check(s) did not hold"
        if self.authenticity:
            return "verified: intact and authentic (the log key was given from outside the bundle)"
        if self.rests_on_checkpoint:
            return ("intact and consistent with the checkpoint you gave, but that checkpoint is signed by the "
                    "bundle's own log key: authenticity rests on the checkpoint you gave (the bundle is authentic "
                    "only if that checkpoint came from a witness or the archive through a trusted channel); "
                    "--vkey (the archive's log key from a trusted channel) establishes it")
        return ("intact, but authenticity NOT established: the keys are the bundle's own; check again with "
                "--vkey (the archive's log key from a trusted channel)")

    def text(self) -> str:
        lines = ["checked:"] + [f"  {n:>7}  {kind}" for kind, n in sorted(self.checked.items())]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"FAIL {f}" for f in self.failures]
        return "\n".join(lines + [self.verdict()]) + "\n"


# --- C2SP signed notes, checkpoints and RFC 9162 proofs ---------------------------------------------------------

def parse_vkey(text: str) -> tuple[str, bytes, bytes]:
    """A C2SP verifier key `<name>+<key id hex>+<base64(0x01 || Ed25519 key)>` → (name, key id, public key)."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not parts[0] or any(c.isspace() for c in parts[0]):
        raise Failed("a verifier key reads <name>+<key id>+<key>")
    try:
        blob = base64.b64decode(parts[2], validate=True)
    except ValueError as exc:
        raise Failed("the verifier key is not base64") from exc
    if len(blob) != 33 or blob[:1] != b"\x01":
        raise Failed("the verifier key is not an Ed25519 key")
    ident = hashlib.sha256(parts[0].encode() + b"\n" + blob).digest()[:4]
    if ident.hex() != parts[1].lower():
        raise Failed("the verifier key id does not match its key")
    return parts[0], ident, blob[1:]


def open_note(note: str, vkey: str) -> str:
    """The text of a signed note carrying a valid signature by `vkey` (other signers' lines are ignored)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name, ident, key = parse_vkey(vkey)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Failed("not a signed note (no blank line before the signatures)")
    text = note[: split + 1]
    for line in note[split + 2:].splitlines():
        if not line.startswith("\u2014 ") or line.count(" ") != 2:
            raise Failed(f"malformed signature line {line[:60]!r}")
        signer, blob_text = line[2:].split(" ")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except ValueError as exc:
            raise Failed(f"the signature of {signer!r} is not base64") from exc
        if signer != name or blob[:4] != ident:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature as exc:
            raise Failed(f"the signature by {name} does not verify") from exc
        return text
    raise Failed(f"no signature by {name} (key id {ident.hex()})")


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """A C2SP tlog-checkpoint body → (origin, tree size, root hash)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[1].isdigit() or (lines[1] != "0" and lines[1][0] == "0"):
        raise Failed("not a checkpoint (origin, decimal size, base64 root)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError as exc:
        raise Failed("the checkpoint root is not base64") from exc
    if len(root) != 32:
        raise Failed("the checkpoint root is not 32 bytes")
    return lines[0], int(lines[1]), root


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root `path` leads leaf `index` of a `size`-leaf tree to."""
    if not 0 <= index < size:
        raise Failed(f"leaf index {index} is not below tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Failed("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise Failed("the inclusion proof is shorter than the tree is deep")
    return r


def check_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
    """RFC 9162 section 2.1.4.2: is the `old_size` tree a prefix of the `new_size` tree?"""
    if old_size == new_size:
        if proof or old_root != new_root:
            raise Failed(f"two trees of size {old_size} with different roots")
        return
    if old_size > new_size or old_size == 0:
        raise Failed(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size & (old_size - 1) == 0:
        proof = [old_root, *proof]
    if not proof:
        raise Failed("the consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise Failed("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise Failed(f"the consistency proof does not lead from size {old_size} to size {new_size}")


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], str]:
    """A C2SP tlog-proof (c2sp.org/tlog-proof@v1) → (index, audit path, checkpoint note)."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != "c2sp.org/tlog-proof@v1":
        raise Failed("not a c2sp.org/tlog-proof@v1 file")
    at = 2 if len(lines) > 1 and lines[1].startswith("extra ") else 1
    if at >= len(lines) or not lines[at].startswith("index ") or not lines[at][6:].isdigit():
        raise Failed("no 'index <decimal>' line")
    try:
        path = [base64.b64decode(line, validate=True) for line in lines[at + 1:]]
    except ValueError as exc:
        raise Failed("an audit path line is not base64") from exc
    if any(len(h) != 32 for h in path):
        raise Failed("an audit path line is not a SHA-256 hash")
    return int(lines[at][6:]), path, note


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value without floats (keys in UTF-16 order, no spaces, UTF-8)."""
    def order(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: order(v[k]) for k in sorted(v, key=lambda k: k.encode("utf-16-be"))}
        if isinstance(v, list):
            return [order(x) for x in v]
        if isinstance(v, float):
            raise Failed("a float has no canonical form here")
        return v
    return json.dumps(order(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def item_commitment(item_id: str, salt: str, sha256: str) -> str:
    return hashlib.sha256(f"evidence-commit/1 {item_id} {salt} {sha256}\n".encode("ascii")).hexdigest()


def record_commitment(record_id: str, salt: str, state: Any) -> str:
    digest = hashlib.sha256(canonical(state)).hexdigest()
    return hashlib.sha256(f"evidence-record/1 {record_id} {salt} {digest}\n".encode()).hexdigest()


# --- the bag ------------------------------------------------------------------------------------------------------

def _read(bag: Reader, path: str) -> bytes:
    with bag.open(path) as stream:
        return stream.read()


def _hashes(bag: Reader, path: str) -> tuple[str, str, int]:
    sha256, sha512, size = hashlib.sha256(), hashlib.sha512(), 0
    with bag.open(path) as stream:
        while chunk := stream.read(CHUNK):
            sha256.update(chunk)
            sha512.update(chunk)
            size += len(chunk)
    return sha256.hexdigest(), sha512.hexdigest(), size


def _manifest(data: bytes, name: str, length: int) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != length or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise Failed(f"line {number} is not '<hex>  <path>'")
        path = path.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
        if path in entries:
            raise Failed(f"{path} is listed twice")
        entries[path] = digest.lower()
    return entries


def _bag_info(data: bytes) -> dict[str, str]:
    info: dict[str, str] = {}
    last = None
    for line in data.decode("utf-8").splitlines():
        if line[:1] in (" ", "\t") and last:
            info[last] += " " + line.strip()
            continue
        label, sep, value = line.partition(":")
        if not sep:
            raise Failed(f"malformed line {line[:60]!r}")
        last = label.strip()
        if last in info:
            raise Failed(f"{last} appears twice")
        info[last] = value.strip()
    return info


def _json(bag: Reader, path: str) -> Any:
    try:
        return json.loads(_read(bag, path))
    except (OSError, KeyError, ValueError) as exc:
        raise Failed(f"unreadable JSON ({exc})") from exc


def verify_bag(bag: Reader | str, *, vkey_text: str | None = None, checkpoint_text: str | None = None,
               consistency: dict[str, Any] | None = None) -> Report:
    """Check everything a bundle part claims; never raises for a bad bundle (the report lists the failures)."""
    reader: Reader = FolderReader(bag) if isinstance(bag, str) else bag
    report = Report()
    try:
        _verify(reader, report, vkey_text, checkpoint_text, consistency)
    except Failed as exc:
        report.fail("bundle", str(exc))
    return report


def _guard(report: Report, where: str, check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except Failed as exc:
        report.fail(where, str(exc))
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
        report.fail(where, f"unreadable or malformed ({type(exc).__name__}: {exc})")
    return None


def _verify(bag: Reader, report: Report, vkey_text: str | None, checkpoint_text: str | None,
            consistency: dict[str, Any] | None) -> None:
    names = set(bag.names())
    for path, kind in sorted(getattr(bag, "refused", {}).items()):
        report.fail(path, f"is {kind}: a bag holds regular files and folders only (refused, not opened)")
    for required in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt", *TAG_MANIFESTS,
                     SIGNATURE, CHECKPOINT, LOG_VKEY, BUNDLE_VKEY, SALTS):
        if required not in names:
            raise Failed(f"{required} is missing")
    if _read(bag, "bagit.txt") != b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n":
        report.fail("bagit.txt", "not a BagIt 1.0 declaration in UTF-8")
    payload = sorted(n for n in names if n.startswith("data/"))
    extra = sorted(n for n in names if not n.startswith("data/") and n not in (*TAG_FILES, *TAG_MANIFESTS, SIGNATURE))
    for name in extra:
        report.fail(name, "a file the bag does not declare")
    hashes = {n: _hashes(bag, n) for n in payload}
    for algo, at, length in (("sha256", 0, 64), ("sha512", 1, 128)):
        listed = _guard(report, f"manifest-{algo}.txt", _manifest, _read(bag, f"manifest-{algo}.txt"),
                        f"manifest-{algo}.txt", length) or {}
        for path, digest in listed.items():
            if path not in hashes:
                report.fail(path, f"listed in manifest-{algo}.txt but missing")
            elif hashes[path][at] != digest:
                report.fail(path, f"its {algo} differs from manifest-{algo}.txt")
            else:
                report.count(f"payload files ({algo})")
        for path in hashes.keys() - listed.keys():
            report.fail(path, f"not listed in manifest-{algo}.txt")
        tags = _guard(report, f"tagmanifest-{algo}.txt", _manifest, _read(bag, f"tagmanifest-{algo}.txt"),
                      f"tagmanifest-{algo}.txt", length) or {}
        for path in TAG_FILES:
            if path not in tags:
                report.fail(f"tagmanifest-{algo}.txt", f"does not list {path}")
        for path, digest in tags.items():
            if path not in names or path not in TAG_FILES:
                report.fail(f"tagmanifest-{algo}.txt", f"lists {path}, which is not a tag file of the bag")
            elif getattr(hashlib, algo)(_read(bag, path)).hexdigest() != digest:
                report.fail(path, f"its {algo} differs from tagmanifest-{algo}.txt")
            else:
                report.count(f"tag files ({algo})")
    info = _guard(report, "bag-info.txt", _bag_info, _read(bag, "bag-info.txt")) or {}
    octets, count = sum(h[2] for h in hashes.values()), len(hashes)
    if info.get("Payload-Oxum") != f"{octets}.{count}":
        report.fail("bag-info.txt", f"Payload-Oxum {info.get('Payload-Oxum')!r}, the payload is {octets}.{count}")
    part, parts = 1, 1
    if "Bag-Count" in info:
        k, sep, n = info["Bag-Count"].partition(" of ")
        if not (sep and k.isdigit() and n.isdigit()):
            report.fail("bag-info.txt", f"Bag-Count {info['Bag-Count']!r} is not 'k of n'")
        else:
            part, parts = int(k), int(n)
    export_id, origin = info.get("Evidence-Export-Id", ""), info.get("Evidence-Origin", "")
    expected_id = export_id + (f"-{part}-of-{parts}" if parts > 1 else "")
    if not export_id or info.get("External-Identifier") != expected_id:
        report.fail("bag-info.txt", "Evidence-Export-Id, External-Identifier and Bag-Count disagree")
    if parts > 1 and info.get("Bag-Group-Identifier") != export_id:
        report.fail("bag-info.txt", "Bag-Group-Identifier is not the export id")
    bundle_vkey = _read(bag, BUNDLE_VKEY).decode("ascii", "replace").strip()
    log_vkey = _read(bag, LOG_VKEY).decode("ascii", "replace").strip()

    def signature() -> None:
        name = parse_vkey(bundle_vkey)[0]
        if name != f"{origin}/bundles":
            raise Failed(f"the bundle key is {name!r}, not {origin}/bundles")
        tag_digest = hashlib.sha256(_read(bag, "tagmanifest-sha256.txt")).hexdigest()
        signed = open_note(_read(bag, SIGNATURE).decode("utf-8"), bundle_vkey)
        if signed != signature_text(origin, export_id, part, parts, tag_digest):
            raise Failed("it does not sign this bag (origin, export, part or tag manifest differ)")
        report.count("bundle signature")
    _guard(report, SIGNATURE, signature)

    trusted = None
    if vkey_text is not None:
        keys = [line.strip() for line in vkey_text.splitlines() if line.strip()]
        for key in keys:
            if _guard(report, "--vkey", parse_vkey, key) is None:
                return
        logs = [k for k in keys if parse_vkey(k)[0] == origin]
        if not logs:
            report.fail("--vkey", f"no key for the log {origin!r}")
        else:
            trusted = logs[0]
            if trusted != log_vkey:
                report.fail(LOG_VKEY, "is not the log key given with --vkey")
        for key in keys:
            if parse_vkey(key)[0] == f"{origin}/bundles" and key != bundle_vkey:
                report.fail(BUNDLE_VKEY, "is not the bundle key given with --vkey")
    note = _read(bag, CHECKPOINT).decode("utf-8", "replace")

    def checkpoint() -> tuple[str, int, bytes]:
        body = parse_checkpoint(open_note(note, trusted or log_vkey))
        if body[0] != origin or parse_vkey(log_vkey)[0] != origin:
            raise Failed(f"the checkpoint or log key is not for {origin!r}")
        report.count("checkpoint signature")
        return body
    tree = _guard(report, CHECKPOINT, checkpoint)
    if tree is None:
        return
    report.authenticity = trusted is not None
    if checkpoint_text is not None or consistency is not None:
        report.consistency = bool(_guard(report, "--checkpoint", _outside_checkpoint, tree,
                                         checkpoint_text, consistency, trusted or log_vkey))
        if checkpoint_text is not None and checkpoint_text == note:
            report.notes.append("the --checkpoint is the bundle's own checkpoint.txt, byte for byte: it adds "
                                "nothing (it proves neither authenticity nor that the log went on)")
        elif trusted is None and report.consistency:
            report.rests_on_checkpoint = True
            report.notes.append("the --checkpoint is signed by the bundle's own log.vkey, not by a key given "
                                "from outside: the bundle is authentic only if that checkpoint came from a "
                                "witness or the archive through a trusted channel")
    events = _events(bag, report, names, note, tree)
    _records(bag, report, names, hashes, events, part, export_id, bundle_vkey, info)


def checkpoint_input(text: str) -> dict[str, Any] | None:
    """A --checkpoint's text → the consistency JSON document (None for a signed note); raises `Failed` when it is
    neither (unusable input: an error in use, not a failed check)."""
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise Failed(f"malformed JSON ({exc})") from exc
        if not isinstance(document, dict) or not isinstance(document.get("old_note"), str) \
                or not isinstance(document.get("new_note"), str) \
                or not isinstance(document.get("consistency_proof"), list) \
                or not all(isinstance(h, str) for h in document["consistency_proof"]):
            raise Failed("not the JSON of `evidence log consistency --json` (old_note, new_note, "
                         "consistency_proof)")
        return document
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise Failed("not a signed checkpoint note (no blank line before the signatures)")
    parse_checkpoint(text[: split + 1])
    return None


def _outside_checkpoint(tree: tuple[str, int, bytes], text: str | None, document: dict[str, Any] | None,
                        vkey: str) -> bool:
    """A newer checkpoint (a signed note, or the JSON of `evidence log consistency --json`) extends the bundle's."""
    if document is None and text is not None:
        document = checkpoint_input(text)
    if document is None:
        origin, size, root = parse_checkpoint(open_note(str(text), vkey))
        if size != tree[1] or origin != tree[0]:
            raise Failed(f"checkpoint {size} is not the bundle's ({tree[1]}): give the JSON of "
                         f"`evidence log consistency {tree[1]} {size} --json`")
        check_consistency(size, size, tree[2], root, [])
        return True
    old = parse_checkpoint(open_note(document["old_note"], vkey))
    new = parse_checkpoint(open_note(document["new_note"], vkey))
    if old[:2] != tree[:2] or old[2] != tree[2] or new[0] != tree[0]:
        raise Failed(f"the consistency proof does not start from the bundle's checkpoint {tree[1]}")
    check_consistency(old[1], new[1], old[2], new[2], [bytes.fromhex(h) for h in document["consistency_proof"]])
    return True


def _events(bag: Reader, report: Report, names: set[str], note: str,
            tree: tuple[str, int, bytes]) -> dict[int, dict[str, Any]]:
    """Every event file against its proof, every proof against checkpoint.txt; the events that verified."""
    found: dict[int, dict[str, Any]] = {}
    event_files = {n for n in names if n.startswith(EVENTS)}
    proof_files = {n for n in names if n.startswith(PROOFS)}
    for path in sorted(event_files):
        seq_text = path[len(EVENTS):].removesuffix(".json")
        proof_path = f"{PROOFS}{seq_text}.tlog-proof"
        if not seq_text.isdigit() or not path.endswith(".json"):
            report.fail(path, "not named <seq>.json")
            continue
        if proof_path not in proof_files:
            report.fail(path, f"has no proof ({proof_path})")
            continue

        def check(path: str = path, seq: int = int(seq_text), proof_path: str = proof_path) -> dict[str, Any]:
            entry = _read(bag, path)
            index, audit, proof_note = parse_tlog_proof(_read(bag, proof_path).decode("utf-8"))
            if proof_note != note:
                raise Failed(f"{proof_path} is against another checkpoint than checkpoint.txt")
            if index != seq:
                raise Failed(f"{proof_path} is for index {index}")
            if inclusion_root(leaf_hash(entry), index, tree[1], audit) != tree[2]:
                raise Failed(f"the event and {proof_path} do not lead to the checkpoint's root")
            fields = json.loads(entry)
            if not isinstance(fields, dict) or fields.get("seq") != seq:
                raise Failed(f"the event inside is not event {seq}")
            report.count("events proven in the log")
            return fields
        fields = _guard(report, path, check)
        if fields is not None:
            found[int(seq_text)] = fields
    for path in sorted(proof_files):
        if f"{EVENTS}{path[len(PROOFS):].removesuffix('.tlog-proof')}.json" not in event_files:
            report.fail(path, "a proof without its event")
    return found


def _records(bag: Reader, report: Report, names: set[str], hashes: dict[str, tuple[str, str, int]],
             events: dict[int, dict[str, Any]], part: int, export_id: str, bundle_vkey: str,
             info: dict[str, str]) -> None:
    docs = {kind: _guard(report, f"{RECORDS}{kind}.json", _json, bag, f"{RECORDS}{kind}.json")
            for kind in (*RECORD_KINDS, "changes")}
    salts = _guard(report, SALTS, _json, bag, SALTS)
    if any(d is None for d in docs.values()) or salts is None:
        return
    records = {kind: doc["records"] for kind, doc in docs.items()}
    if salts.get("format") != SALTS_FORMAT:
        report.fail(SALTS, f"format is not {SALTS_FORMAT}")
    item_salts, record_salts = salts.get("items", {}), salts.get("records", {})

    def event(seq: Any, what: str) -> dict[str, Any]:
        if seq not in events:
            raise Failed(f"{what} names event {seq}, which the bundle does not prove")
        return events[seq]

    items = {str(r["id"]): r for r in records["items"]}
    here = {n for n in names if n.startswith(ORIGINALS)}
    for item_id, item in items.items():
        def check_item(item_id: str = item_id, item: dict[str, Any] = item) -> None:
            sha256 = item["sha256"]
            if item.get("part") == part:
                original = item["original"]
                if original not in hashes:
                    raise Failed(f"its original {original} is not in this part")
                here.discard(original)
                if hashes[original][0] != sha256 or hashes[original][2] != item["size"]:
                    raise Failed(f"{original} is not the file the record describes (hash or size)")
                report.count("originals against their records")
            if item_commitment(item_id, item_salts[item_id], sha256) != item["commitment"]:
                raise Failed("the salt and hash do not open its commitment")
            logged = event(item["commitment_event"], "its commitment")
            if logged.get("item") != item_id or logged.get("details", {}).get("commitment") != item["commitment"]:
                raise Failed(f"event {item['commitment_event']} does not commit to it")
            if f"{CERTIFICATES}{item_id}.pdf" not in names:
                raise Failed("no custody certificate")
            report.count("item commitments")
        _guard(report, f"{RECORDS}items.json ({item_id})", check_item)
    for path in sorted(here):
        report.fail(path, "an original no record describes")
    opened = set()
    for number, change in enumerate(records["changes"]):
        def check_change(change: dict[str, Any] = change) -> None:
            commitment = change["commitment"]
            if change["state"] is not None:
                salt = record_salts.get(commitment)
                if salt is None:
                    raise Failed("no salt for its state")
                if record_commitment(change["record_id"], salt, change["state"]) != commitment:
                    raise Failed("the state and salt do not open its commitment")
                opened.add(commitment)
            elif commitment in record_salts:
                raise Failed("a withheld state's salt is in salts.json")
            logged = event(change["event_seq"], "it").get("details", {})
            if change["batch_index"] is None:
                if logged.get("commitment") != commitment or logged.get("record", change["record_id"]) \
                        != change["record_id"]:
                    raise Failed(f"event {change['event_seq']} does not commit to it")
            else:
                path = [bytes.fromhex(h) for h in change["batch_path"]]
                root = inclusion_root(leaf_hash(bytes.fromhex(commitment)), change["batch_index"],
                                      change["batch_size"], path)
                if logged.get("merkle_root") != root.hex() or logged.get("records") != change["batch_size"]:
                    raise Failed(f"it is not in the batch event {change['event_seq']} commits to")
            report.count("record commitments")
        _guard(report, f"{RECORDS}changes.json (#{number} {change.get('record_id')})", check_change)
    latest: dict[str, dict[str, Any]] = {}  # each record's last change, in the log's order
    for change in sorted(records["changes"], key=lambda c: (c["event_seq"], c["batch_index"] or 0)):
        latest[str(change["record_id"])] = change
    for kind in RECORD_KINDS[1:]:
        for rec in records[kind]:  # what a records file says must be the state the log commits to
            last = latest.get(str(rec.get("id")))
            if last is None or last["state"] is None or last["commitment"] not in opened:
                continue
            differ = sorted(k for k, v in last["state"].items() if k in rec and rec[k] != v)
            if differ:
                report.fail(f"{RECORDS}{kind}.json ({rec['id']})", f"{', '.join(differ)} differ from its "
                            "committed state in changes.json")
            else:
                report.count("records against their committed state")
    if set(item_salts) != set(items):
        report.fail(SALTS, "its item salts are not exactly the included items'")
    if set(record_salts) != opened:
        report.fail(SALTS, "it holds salts of record states the bundle does not open")
    started = [e for e in events.values() if e.get("type") == "dissemination"
               and e.get("details", {}).get("action") == "export started"
               and e.get("details", {}).get("export") == export_id]

    def check_started() -> None:
        if len(started) != 1:
            raise Failed(f"{len(started)} proven 'export started' events for {export_id}, not one")
        details = started[0]["details"]
        if str(started[0]["seq"]) != info.get("Evidence-Export-Event"):
            raise Failed("Evidence-Export-Event in bag-info.txt is not its seq")
        if details.get("bundle_key") != bundle_vkey:
            raise Failed("the bundle key it names is not bundle.vkey")
        if details.get("items") != sorted(items):
            raise Failed("the items it names are not items.json's")
        ids = {str(r["id"]) for kind in RECORD_KINDS[1:] for r in records[kind]}  # attributions: in changes
        ids |= {str(c["record_id"]) for c in records["changes"]} - set(items)
        if details.get("records") != sorted(ids):
            raise Failed("the records it names are not the records files'")
        report.count("export-started event")
    _guard(report, f"{EVENTS} (export started)", check_started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("bag", nargs="?", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--vkey", help="the archive's log verifier key, from a trusted channel")
    parser.add_argument("--checkpoint", help="the bundle's checkpoint as a witness or the archive gave it, or "
                        "`evidence log consistency --json` (without --vkey: checked under the bundle's own key)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        vkey = open(args.vkey, encoding="utf-8").read() if args.vkey else None
        checkpoint = open(args.checkpoint, encoding="utf-8").read() if args.checkpoint else None
        if checkpoint is not None:
            checkpoint_input(checkpoint)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Failed as exc:
        print(f"error: --checkpoint {args.checkpoint} is unusable: {exc}", file=sys.stderr)
        return 2
    if not os.path.isfile(os.path.join(args.bag, "bagit.txt")):
        print(f"error: {args.bag} is not a bag folder (no bagit.txt)", file=sys.stderr)
        return 2
    report = verify_bag(args.bag, vkey_text=vkey, checkpoint_text=checkpoint)
    print(json.dumps(report.as_dict(), indent=1) if args.json else report.text(), end="" if not args.json else "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
