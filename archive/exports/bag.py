"""A BagIt 1.0 bag (RFC 8493) streamed straight into a zip or a tar: nothing is staged on disk.

Each payload file is hashed (SHA-256 and SHA-512) as it is written, in two
worker threads fed by bounded queues (hashlib releases the GIL, so the hashes
run beside decryption, CRC and encryption); then the manifests, bagit.txt,
bag-info.txt (with Payload-Oxum and Bag-Size), the given tag files, the tag
manifests and signature.note are written. Memory stays bounded: pieces of about
1 MiB, at most a few of them queued per hash.

The zip is ZIP_STORED with zip64 records and data descriptors, so it can be
written to a pipe or an HTTP response; the tar is POSIX pax, written by hand
(tarfile's stream mode re-slices its buffer on every write).
"""

from __future__ import annotations

import hashlib
import queue
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from archive.exports.verify_script import SIGNATURE, signature_text
from archive.services.errors import ServiceError

CHUNK = 1 << 20  # the piece size payload chunks are gathered into before they are hashed and written
_DEPTH = 6  # pieces a hash thread may lag behind the writer
_INLINE = 256 << 10  # files up to this size are hashed in the writer's thread (no queue round trip)
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
TAG_MANIFESTS = ("tagmanifest-sha256.txt", "tagmanifest-sha512.txt")
ALGORITHMS = ("sha256", "sha512")


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass
class BagFile:
    """One payload file: its path inside the bag (`data/...`), its size when known (tar needs it), its bytes."""

    path: str
    size: int | None
    chunks: Callable[[], Iterable[bytes]]
    # The SHA-256 (hex) of exactly the bytes `chunks` yielded, when the source computes it anyway
    # (`open_original` does, to check the log's commitment): asked once the chunks are exhausted, and the
    # writer's own SHA-256 pass is skipped (it is the dearest hash after SHA-512 on a 2-core machine).
    sha256: Callable[[], str] | None = None


class _Known:
    """A digest the source computed: asked only after the file's chunks ran out."""

    def __init__(self, path: str, value: Callable[[], str]) -> None:
        self._path = path
        self._value = value

    def update(self, piece: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        value = self._value()
        if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
            raise ServiceError(f"{self._path}: the source gave no SHA-256 for its bytes")
        return value


@dataclass
class BagResult:
    payload_oxum: str  # "<octets>.<files>"
    files: int  # payload files
    octets: int  # payload bytes
    manifest: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (sha256, sha512)
    tagmanifest_sha256: str = ""  # what signature.note signs


class _Hasher:
    """One algorithm in a worker thread: (digest, piece) pairs over a bounded queue, joined at the end."""

    def __init__(self, algorithm: str) -> None:
        self._queue: queue.Queue[tuple[Any, bytes] | None] = queue.Queue(_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"bag-{algorithm}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                job[0].update(job[1])
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self._error = exc

    def put(self, digest: Any, piece: bytes) -> None:
        self._queue.put((digest, piece))

    def join(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """After a failure (a signal may have struck mid-queue-operation): stop without waiting long."""
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                return
            self._thread.join(timeout=1)


def _pieces(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Gather small chunks into pieces of about CHUNK bytes (fewer queue hand-offs and writes)."""
    held: list[bytes] = []
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        if not held and len(chunk) >= CHUNK:
            yield bytes(chunk)
            continue
        held.append(bytes(chunk))
        size += len(chunk)
        if size >= CHUNK:
            yield b"".join(held)
            held, size = [], 0
    if held:
        yield b"".join(held)


_END = object()


def _prefetched(pieces: Iterable[bytes], path: str) -> Iterator[bytes]:
    """Run the source (decryption, its own verification) in a thread a few pieces ahead of the writer.

    The source is iterated by that thread alone, start to end (open_original's access event included);
    an error in it is raised here, and a writer that stops early stops it."""
    ahead: queue.Queue[object] = queue.Queue(_DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for piece in pieces:
                while not stop.is_set():
                    try:
                        ahead.put(piece, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread
            ahead.put(exc)

    thread = threading.Thread(target=produce, name=f"bag-read {path}", daemon=True)
    thread.start()
    try:
        while (piece := ahead.get()) is not _END:
            if isinstance(piece, BaseException):
                raise piece
            yield piece  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: CR, LF and % in a manifest path are percent-encoded."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _manifest(entries: dict[str, str]) -> bytes:
    return "".join(f"{entries[p]}  {_manifest_path(p)}\n" for p in sorted(entries)).encode("utf-8")


def bag_size(octets: int) -> str:
    """Bag-Size: approximate and human readable."""
    size = float(octets)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def bag_info_text(fields: dict[str, str]) -> bytes:
    """`Label: value` lines; a value's own line breaks become continuation lines (RFC 8493 §2.2.2)."""
    lines = []
    for label, value in fields.items():
        if not label or ":" in label or label != label.strip() or "\n" in label:
            raise ServiceError(f"bag-info label {label!r} is not valid")
        text = "\n  ".join(part.strip() for part in str(value).strip().splitlines()) or ""
        lines.append(f"{label}: {text}\n")
    return "".join(lines).encode("utf-8")


class _Zip:
    def __init__(self, out: Writable, stamp: tuple[int, int, int, int, int, int]) -> None:
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True)  # type: ignore[call-overload]
        self._stamp = stamp

    def add(self, name: str, size: int | None, pieces: Iterable[bytes]) -> None:
        info = zipfile.ZipInfo(name, self._stamp)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        if size is not None:
            info.file_size = size
        with self._zip.open(info, "w", force_zip64=True) as member:
            for piece in pieces:
                member.write(piece)

    def close(self) -> None:
        self._zip.close()

    def abort(self) -> None:
        self._zip.fp = None  # a failed bag gets no central directory (and ZipFile.__del__ writes nothing)


class _Tar:
    """POSIX pax tar written by hand: header, data, padding to 512; two zero blocks; padding to 10240."""

    def __init__(self, out: Writable, mtime: int) -> None:
        self._out = out
        self._mtime = mtime
        self._written = 0

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)

    def add(self, name: str, size: int | None, pieces: Iterable[bytes]) -> None:
        if size is None:
            raise ServiceError(f"{name}: a tar needs every file's size before its bytes")
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self._mtime
        info.mode = 0o644
        info.uname = info.gname = ""
        self._write(info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict"))
        for piece in pieces:
            self._write(piece)
        if size % 512:
            self._write(b"\0" * (512 - size % 512))

    def abort(self) -> None:
        pass

    def close(self) -> None:
        self._write(b"\0" * 1024)
        if self._written % tarfile.RECORDSIZE:
            self._write(b"\0" * (tarfile.RECORDSIZE - self._written % tarfile.RECORDSIZE))


def _checked(name: str, declared: int | None, pieces: Iterable[bytes], counter: list[int]) -> Iterator[bytes]:
    """Pass pieces through, counting; a file that ends up longer or shorter than declared is an error."""
    total = 0
    for piece in pieces:
        total += len(piece)
        if declared is not None and total > declared:
            raise ServiceError(f"{name}: more bytes than the {declared} declared")
        yield piece
    if declared is not None and total != declared:
        raise ServiceError(f"{name}: {total} bytes where {declared} were declared")
    counter[0] = total


def write_bag(out: Writable, *, name: str, fmt: str, payload: Iterable[BagFile], bag_info: dict[str, str],
              tag_files: dict[str, bytes], sign: Callable[[str], str]) -> BagResult:
    """Stream one complete bag under `<name>/` into `out` as a zip or tar (see the module docstring).

    `sign` receives the signature text (verify_script.signature_text: origin, export id, part, from
    bag_info's Evidence-Origin, Evidence-Export-Id and Bag-Count) and returns the signed note."""
    if fmt not in ("zip", "tar"):
        raise ServiceError(f"unknown bag serialization {fmt!r} (zip or tar)")
    reserved = {"bagit.txt", "bag-info.txt", SIGNATURE, *TAG_MANIFESTS, *(f"manifest-{a}.txt" for a in ALGORITHMS)}
    clash = reserved & set(tag_files)
    if clash:
        raise ServiceError(f"tag files the writer makes itself: {', '.join(sorted(clash))}")
    now = time.time()
    stamp = time.gmtime(now)[:6]
    archive: _Zip | _Tar = _Zip(out, stamp) if fmt == "zip" else _Tar(out, int(now))  # type: ignore[arg-type]
    hashers = [_Hasher(a) for a in ALGORITHMS]
    try:
        result = _write(archive, hashers, name, payload, bag_info, tag_files, sign)
    except BaseException:
        archive.abort()
        for hasher in hashers:
            hasher.abandon()
        raise
    for hasher in hashers:
        hasher.join()
    return result


def _write(archive: _Zip | _Tar, hashers: list[_Hasher], name: str, payload: Iterable[BagFile],
           bag_info: dict[str, str], tag_files: dict[str, bytes], sign: Callable[[str], str]) -> BagResult:
    digests: dict[str, tuple[Any, Any]] = {}
    octets = 0
    try:
        for item in payload:
            path = item.path
            if not path.startswith("data/") or path in digests or "\\" in path or ".." in path.split("/") \
                    or path.endswith("/"):
                raise ServiceError(f"payload path {path!r} is not a new file under data/")
            known = item.sha256 is not None
            pair = (_Known(path, item.sha256) if item.sha256 is not None else hashlib.sha256(), hashlib.sha512())
            digests[path] = pair
            inline = item.size is not None and item.size <= _INLINE
            counter = [0]

            def hashed(pieces: Iterable[bytes], pair: tuple[Any, Any] = pair, inline: bool = inline,
                       known: bool = known) -> Iterator[bytes]:
                for piece in pieces:
                    if inline:
                        pair[0].update(piece)
                        pair[1].update(piece)
                    else:
                        if not known:
                            hashers[0].put(pair[0], piece)
                        hashers[1].put(pair[1], piece)
                    yield piece

            source = _pieces(item.chunks()) if inline else _prefetched(_pieces(item.chunks()), path)
            archive.add(f"{name}/{path}", item.size, hashed(_checked(path, item.size, source, counter)))
            octets += counter[0]
    finally:
        for hasher in hashers:
            hasher.join()
    manifest = {p: (d[0].hexdigest(), d[1].hexdigest()) for p, d in digests.items()}
    tags: dict[str, bytes] = {}
    for index, algorithm in enumerate(ALGORITHMS):
        tags[f"manifest-{algorithm}.txt"] = _manifest({p: h[index] for p, h in manifest.items()})
    oxum = f"{octets}.{len(manifest)}"
    info = dict(bag_info)
    info["Payload-Oxum"] = oxum
    info["Bag-Size"] = bag_size(octets + sum(len(d) for d in tags.values()) + sum(len(d) for d in tag_files.values()))
    tags["bagit.txt"] = BAGIT_TXT
    tags["bag-info.txt"] = bag_info_text(info)
    tags.update(tag_files)
    for algorithm in ALGORITHMS:
        tags[f"tagmanifest-{algorithm}.txt"] = _manifest(
            {p: hashlib.new(algorithm, d).hexdigest() for p, d in tags.items() if not p.startswith("tagmanifest-")})
    tm_sha256 = hashlib.sha256(tags["tagmanifest-sha256.txt"]).hexdigest()
    part, parts = 1, 1
    if "Bag-Count" in bag_info:
        k, _, n = bag_info["Bag-Count"].partition(" of ")
        part, parts = int(k), int(n)
    tags[SIGNATURE] = sign(signature_text(bag_info.get("Evidence-Origin", ""),
                                          bag_info.get("Evidence-Export-Id", name), part, parts,
                                          tm_sha256)).encode("utf-8")
    for path in ("bagit.txt", *sorted(p for p in tags if p != "bagit.txt")):
        data = tags[path]
        archive.add(f"{name}/{path}", len(data), (data,))
    archive.close()
    return BagResult(oxum, len(manifest), octets, manifest, tm_sha256)
