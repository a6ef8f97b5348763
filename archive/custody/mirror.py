"""The custody log kept on every storage site, as static C2SP tlog-tiles objects.

Why: the catalog can be rebuilt from any one site and the custodian key; with
the log beside the originals, the rebuilt archive can also check every
manifest against the signed log and go on appending to the *same* log.

Layout under `log/` on each site (tlog-tiles paths, with its index encoding
`x001/x234/067`):

    log/tile/<L>/<N>             a full tile: 256 hashes of tree level 8·L
    log/tile/<L>/<N>.p/<W>       a partial tile of W hashes, for a tree that ends inside it
    log/tile/entries/<N>         a full entry bundle: 256 entries, each a big-endian
                                 uint16 length and the entry's canonical bytes
    log/tile/entries/<N>.p/<W>   a partial bundle
    log/checkpoints/<size>       the signed checkpoint note of that size
    log/vkey                     the verifier key the notes are signed with
    log/signing-key.age          the signing key, age-encrypted to the archive's recipients

Every object is written once and never overwritten: full tiles and bundles are
immutable by construction, a partial one has its width in its name, and each
checkpoint its size (tlog-tiles' single mutable `checkpoint` file is replaced
by one object per size). An existing object holding other bytes is a conflict
that is reported, never "fixed". What each site already holds is remembered in
a catalog cursor per site (tied to the site's marker), so a checkpoint uploads
only what is new: a few objects per site.

Events name items, objects and sites by their random ids; no file name,
source, note or plaintext hash is in any event (see `archive.custody.entry`
and the steps that record events), so the log is stored in clear like a
checkpoint. Actors are named by random user ids only (the names stay in the
catalog's users table).

A site whose copy is not a prefix of the catalog's log (its newest checkpoint
is not one this catalog signed: the catalog was rolled back, or the site
belongs to another log) is a *conflict*: nothing more is written there, the
result and the site's cursor say so (`evidence log checkpoint`, the worker and
`evidence status` report it), and the site's copy is left as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from archive.catalog.checkpoints import Checkpoint, LogTile
from archive.catalog.events import Event
from archive.custody.entry import encode, entry_fields, leaf_hash
from archive.custody.merkle import HASH_SIZE, MemoryTree
from archive.custody.tiles import TILE_HEIGHT, TILE_WIDTH
from archive.custody.verify import VerificationError, Verifier, open_note, parse_checkpoint
from storage.base import StorageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from storage.base import Backend

LOG_PREFIX = "log/"
CHECKPOINTS = LOG_PREFIX + "checkpoints/"
VKEY = LOG_PREFIX + "vkey"
# The checkpoint signing key, age-encrypted to the archive's recipients: with the custodian
# identity, a catalog rebuilt from this site alone goes on signing the same log.
SEALED_SIGNING_KEY = LOG_PREFIX + "signing-key.age"
CURSOR_PREFIX = "log-mirror:"
MAX_ENTRY = 0xFFFF  # an entry bundle records each entry's length in two bytes


class MirrorError(VerificationError):
    """A site's copy of the log is inconsistent, or holds other bytes than the catalog's log."""


class MirrorConflict(MirrorError):
    """The site already holds other bytes than the catalog's log for the same place: never overwritten."""


@dataclass
class MirrorResult:
    """What one site got: objects written now, objects found already there, or why it got nothing."""

    site: str
    tree_size: int = 0
    written: int = 0
    present: int = 0
    error: str | None = None
    conflict: bool = False  # the site's copy disagrees with the catalog's log (rolled back?)


# -- names ---------------------------------------------------------------------------------


def index_path(index: int) -> str:
    """tlog-tiles' encoding of a tile index: 3-digit groups, all but the last prefixed with 'x'."""
    digits = str(index)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def tile_name(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """The object name of tile (level, index) holding `width` hashes (or entries, for level 'entries')."""
    name = f"{LOG_PREFIX}tile/{level}/{index_path(index)}"
    return name if width == TILE_WIDTH else f"{name}.p/{width}"


def checkpoint_name(size: int) -> str:
    return f"{CHECKPOINTS}{size}"


def _cursor_name(site: str) -> str:
    name = CURSOR_PREFIX + site
    return name if len(name) <= 64 else CURSOR_PREFIX + hashlib.sha256(site.encode()).hexdigest()[:32]


# -- what a tree of a given size consists of ----------------------------------------------------


def tiles_between(old_size: int, new_size: int) -> Iterator[tuple[int, int, int]]:
    """(level, index, width) of every tile a `new_size` tree has that a mirror at `old_size` lacks.

    Full tiles completed since `old_size`, and the partial tile at the right
    edge of each level (which `old_size` never has unless the sizes are equal).
    """
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        width_new = new_size >> (TILE_HEIGHT * level)
        width_old = old_size >> (TILE_HEIGHT * level)
        for index in range(width_old // TILE_WIDTH, width_new // TILE_WIDTH):
            yield level, index, TILE_WIDTH
        if width_new % TILE_WIDTH and (old_size != new_size):
            yield level, width_new // TILE_WIDTH, width_new % TILE_WIDTH
        level += 1


def bundles_between(old_size: int, new_size: int) -> Iterator[tuple[int, int]]:
    """(index, width) of every entry bundle a `new_size` log has that a mirror at `old_size` lacks."""
    for index in range(old_size // TILE_WIDTH, new_size // TILE_WIDTH):
        yield index, TILE_WIDTH
    if new_size % TILE_WIDTH and old_size != new_size:
        yield new_size // TILE_WIDTH, new_size % TILE_WIDTH


def pack_bundle(entries: list[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY:
            raise MirrorError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def unpack_bundle(data: bytes, name: str) -> list[bytes]:
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise MirrorError(f"{name}: truncated entry length")
        size = int.from_bytes(data[at : at + 2], "big")
        entry = data[at + 2 : at + 2 + size]
        if len(entry) != size:
            raise MirrorError(f"{name}: truncated entry")
        entries.append(entry)
        at += 2 + size
    return entries


# -- writing -------------------------------------------------------------------------------------


def _read(backend: Backend, name: str) -> bytes:
    with backend.open_reader(name) as stream:
        return bytes(stream.read())


def _put_once(backend: Backend, name: str, data: bytes, result: MirrorResult) -> None:
    """Write `name` unless it is there already with the same bytes; other bytes are a conflict."""
    if backend.stat(name) is None:
        try:
            backend.put_bytes(name, data)
            result.written += 1
            return
        except StorageError:
            if backend.stat(name) is None:  # not a lost race: a real failure
                raise
    if _read(backend, name) != data:
        raise MirrorConflict(f"storage {backend.name!r}: {name} holds other bytes than the catalog's log")
    result.present += 1


def _check_prefix(session: Session, backend: Backend, size: int) -> None:
    """Refuse to write unless the site's newest checkpoint is one this catalog signed (at most `size`).

    A catalog rolled back and grown again signs other roots for sizes the site
    already holds; writing its tiles beside the old ones would leave the site a
    copy that no longer verifies. One listing per site, only when it lacks something.
    """
    sizes = [int(t) for info in backend.list(CHECKPOINTS) if (t := info.name[len(CHECKPOINTS):]).isdigit()]
    newest = max(sizes, default=None)
    if newest is None:
        return
    if newest > size:
        raise MirrorConflict(f"storage {backend.name!r} holds a checkpoint of {newest} events, this catalog's log "
                             f"only {size}")
    ours = session.get(Checkpoint, newest)
    if ours is None or _read(backend, checkpoint_name(newest)) != ours.note.encode("utf-8"):
        raise MirrorConflict(f"storage {backend.name!r}: {checkpoint_name(newest)} is not a checkpoint this "
                             "catalog's log signed")


def _latest(session: Session) -> Checkpoint | None:
    return session.execute(sa_select(Checkpoint).order_by(col(Checkpoint.tree_size).desc()).limit(1)).scalar()


def _tile(session: Session, level: int, index: int, width: int) -> bytes:
    row = session.get(LogTile, (level, index))
    hashes = bytes(row.hashes) if row is not None else b""
    if len(hashes) < width * HASH_SIZE:
        raise MirrorError(f"the catalog's tile ({level}, {index}) holds fewer than {width} hashes")
    return hashes[: width * HASH_SIZE]  # a tile grown since the checkpoint still starts the same


def _entries(session: Session, start: int, end: int) -> list[bytes]:
    columns = [col(c) for c in (Event.seq, Event.occurred_at, Event.actor, Event.event_type, Event.item_id,
                                Event.objects, Event.outcome, Event.details)]
    stmt = sa_select(*columns).where(col(Event.seq) >= start, col(Event.seq) < end).order_by(col(Event.seq))
    entries = []
    for expected, (seq, occurred_at, actor, event_type, item_id, objects, outcome, details) in enumerate(
        session.execute(stmt), start
    ):
        if seq != expected:
            raise MirrorError(f"event {expected} is missing from the catalog")
        entries.append(encode(entry_fields(seq=seq, occurred_at=occurred_at, actor=actor, event_type=event_type,
                                           item_id=item_id, objects=objects, outcome=outcome, details=details)))
    if len(entries) != end - start:
        raise MirrorError(f"the catalog holds fewer events than [{start}, {end})")
    return entries


def _mirror_site(
    engine: Engine, backend: Backend, vkey: str | None, result: MirrorResult, sealed_key: Callable[[], bytes] | None
) -> None:
    from archive.catalog.jobs import read_cursor, write_cursor
    from archive.db import transaction

    with Session(engine) as session:
        latest = _latest(session)
        if latest is None:
            return
        size = result.tree_size = latest.tree_size
        cursor = read_cursor(session, _cursor_name(backend.name))
        if (cursor is not None and cursor.value == str(size) and cursor.state.get("root") == latest.root_hash
                and not cursor.state.get("conflict")):
            return  # nothing new: no request to the site at all
        # The cursor counts only for the disk or bucket it was written for (a new one starts again).
        marker = backend.read_marker()
        claim = marker.created_at if marker is not None else ""
        done = 0
        if cursor is not None and cursor.value and cursor.state.get("marker") == claim:
            done = min(int(cursor.value), size)
        _check_prefix(session, backend, size)
        if vkey is not None:
            _put_once(backend, VKEY, (vkey.strip() + "\n").encode("ascii"), result)
        if sealed_key is not None and backend.stat(SEALED_SIGNING_KEY) is None:
            backend.put_bytes(SEALED_SIGNING_KEY, sealed_key())  # encryption is randomized: write once, never compare
            result.written += 1
        for index, width in bundles_between(done, size):
            entries = _entries(session, index * TILE_WIDTH, index * TILE_WIDTH + width)
            leaves = b"".join(leaf_hash(entry) for entry in entries)
            if leaves != _tile(session, 0, index, width):  # never mirror entries the tree does not hold
                raise MirrorError(f"events {index * TILE_WIDTH}… do not match the catalog's tile (0, {index})")
            _put_once(backend, tile_name("entries", index, width), pack_bundle(entries), result)
        for level, index, width in tiles_between(done, size):
            _put_once(backend, tile_name(level, index, width), _tile(session, level, index, width), result)
        _put_once(backend, checkpoint_name(size), latest.note.encode("utf-8"), result)  # last: its tiles are there
    with transaction(engine) as session:
        write_cursor(session, _cursor_name(backend.name), str(size), {"marker": claim, "root": latest.root_hash})


def mirror_log(
    engine: Engine,
    backends: Iterable[Backend],
    *,
    vkey: str | None = None,
    sealed_key: Callable[[], bytes] | None = None,
) -> dict[str, MirrorResult]:
    """Put what each site lacks of the log up to the latest checkpoint on it: tiles, entries, the checkpoint.

    Idempotent and cheap when nothing is new (a cursor read per site, no
    request to it). A site that is unavailable (its marker missing or foreign:
    writes refuse), or whose copy conflicts, is reported in its result and
    skipped; the others go on. `vkey` (the verifier key text) is stored once,
    and so is the sealed signing key (`sealed_key()` makes it when a site lacks it).
    """
    results: dict[str, MirrorResult] = {}
    for backend in backends:
        result = results[backend.name] = MirrorResult(backend.name)
        try:  # every write checks the site's marker: an unavailable site fails here and is skipped
            _mirror_site(engine, backend, vkey, result, sealed_key)
        except MirrorConflict as exc:
            result.error, result.conflict = str(exc), True
            _remember_conflict(engine, backend.name, result.error)
        except (StorageError, OSError, VerificationError) as exc:
            result.error = str(exc)
    return results


def _remember_conflict(engine: Engine, site: str, why: str) -> None:
    """Keep the conflict in the site's cursor (its position unchanged) until a mirror succeeds again."""
    from archive.catalog.jobs import read_cursor, write_cursor
    from archive.db import transaction

    with transaction(engine) as session:
        cursor = read_cursor(session, _cursor_name(site))
        state = dict(cursor.state) if cursor is not None else {}
        write_cursor(session, _cursor_name(site), cursor.value if cursor is not None else None,
                     {**state, "conflict": why})


def mirror_conflict(session: Session, site: str) -> str | None:
    """Why the site's copy of the log disagrees with the catalog's, as the last mirror found, or None."""
    from archive.catalog.jobs import read_cursor

    cursor = read_cursor(session, _cursor_name(site))
    found = cursor.state.get("conflict") if cursor is not None else None
    return str(found) if found else None


# -- reading back ------------------------------------------------------------------------------


@dataclass
class MirroredLog:
    """One site's copy of the log, checked: every entry up to the newest checkpoint, and every checkpoint."""

    entries: list[bytes] = field(default_factory=list)  # canonical entry bytes, entry i at index i
    checkpoints: dict[int, str] = field(default_factory=dict)  # tree size -> signed note
    vkey: str | None = None

    @property
    def tree_size(self) -> int:
        return max(self.checkpoints, default=0)

    def events(self) -> list[dict[str, object]]:
        import json

        return [json.loads(entry) for entry in self.entries]


def read_mirrored_log(backend: Backend, verifier: Verifier | None = None) -> MirroredLog:
    """Read and check one site's log: signatures, roots of every checkpoint, and the stored tiles.

    `verifier` should come from outside the site (the published log.vkey, a
    witness): the site's own `log/vkey` is used only when none is given, and
    then proves only that the site agrees with itself. Raises `MirrorError`
    naming the object that does not verify.
    """
    log = MirroredLog()
    if backend.stat(VKEY) is not None:
        log.vkey = _read(backend, VKEY).decode("ascii").strip()
    if verifier is None:
        if log.vkey is None:
            raise MirrorError(f"storage {backend.name!r} holds no log verifier key; give one")
        verifier = Verifier.decode(log.vkey)
    for info in backend.list(CHECKPOINTS):
        size_text = info.name[len(CHECKPOINTS) :]
        if not size_text.isdigit():
            continue
        log.checkpoints[int(size_text)] = _read(backend, info.name).decode("utf-8")
    size = log.tree_size
    for index, width in bundles_between(0, size):
        name = tile_name("entries", index, width)
        entries = unpack_bundle(_read(backend, name), name)
        if len(entries) != width:
            raise MirrorError(f"{name}: {len(entries)} entries, expected {width}")
        log.entries += entries
    tree = MemoryTree(b"".join(leaf_hash(entry) for entry in log.entries))
    for tree_size, note in sorted(log.checkpoints.items()):
        name = checkpoint_name(tree_size)
        try:
            body = parse_checkpoint(open_note(note, verifier))
        except VerificationError as exc:
            raise MirrorError(f"{name}: {exc}") from exc
        if body.tree_size != tree_size:
            raise MirrorError(f"{name} is the checkpoint of a tree of {body.tree_size} entries")
        if tree.root(tree_size) != body.root_hash:
            raise MirrorError(f"{name}: the mirrored entries do not reproduce its root hash")
    for level, index, width in tiles_between(0, size):
        name = tile_name(level, index, width)
        row = tree.levels[TILE_HEIGHT * level] if TILE_HEIGHT * level < len(tree.levels) else b""
        expected = row[index * TILE_WIDTH * HASH_SIZE : (index * TILE_WIDTH + width) * HASH_SIZE]
        if _read(backend, name) != expected:
            raise MirrorError(f"{name} does not match the hashes of the mirrored entries")
    return log
