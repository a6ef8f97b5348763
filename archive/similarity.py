"""Near-duplicate search: the same picture or footage, re-shared, among everything kept.

How a match is decided (why: one hash alone either misses crops or confuses
distinct pictures). Every stored view of a photo, and every sampled frame of a
video, has a pHash and a dHash. A query view and a stored view are at distance
ceil((pHash distance + dHash distance) / 2), a Hamming distance on 0–64; they
match when that is at most `max_distance` (default 11). An item's distance is
that of its best-matching view. For a video the share of frames that match
counts too: `frame_match_share` is the number of matching frames over the
frame count of the shorter of the two videos, so a clip cut from a long video
scores high from either side, and at least half must match.

Finding the candidates is exact and sublinear: a pair within distance r has
pHash or dHash within r, so both hashes are looked up in a `HammingIndex`
with radius r and the few rows found are checked with both.

The fingerprints are sealed in the catalog (`archive.catalog.fingerprints`):
the index is built in memory after unlocking, by opening them, and refreshed
incrementally by row id; a locked process cannot search and says so.

Scaling past one machine (for the README): the index is a pure function of
the (opened) fingerprint rows and is held in memory by each process that searches
(about 24 bytes per fingerprint with its tables, 10 million fingerprints in
~240 MB, a query in a few milliseconds). Past one machine, shard it: assign
each fingerprint to a shard by item id, let each search worker hold one shard
(rebuilt from the catalog after unlocking, never from a clear snapshot, and
refreshed incrementally by row id), send every query to all shards in parallel and merge the
sorted answers; the answer is exact because every shard answers exactly.
Multi-index hashing also partitions by chunk value, so very large archives can
instead route each 16-bit chunk bucket range to its own machine. The catalog
(PostgreSQL) stays the single source of truth; an index is only a cache, and
holds fingerprints in clear: it lives in memory only, like the unlocked keys.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from archive.catalog.fingerprints import candidates_for
from archive.db import read_only
from archive.hamming import HammingIndex, popcount
from archive.roles import Role

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys
    from ingest.fingerprints.common import Hash

DEFAULT_MAX_DISTANCE = 11
MIN_FRAME_SHARE = 0.5
VIDEO_VARIANTS = frozenset({"frame", "tframe"})


@dataclass
class Match:
    """One similar item: its id, the distance of its best-matching view, and for videos the frame share."""

    id: str
    distance: int
    frame_match_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "distance": self.distance}
        if self.frame_match_share is not None:
            out["frame_match_share"] = round(self.frame_match_share, 3)
        return out


@dataclass
class Probe:
    """What a query compares: (pHash, dHash, group) per view; a group is one video frame or one photo."""

    medium: str  # photo | video
    views: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def groups(self) -> int:
        return len({g for _, _, g in self.views})


def photo_probe(source: Any, rotations: bool = True) -> Probe:
    """A probe from a picture: every view of every rotation and mirror of it."""
    from ingest.fingerprints.photo import query_views

    return Probe("photo", [(v.phash, v.dhash, 0) for v in query_views(source, rotations=rotations)])


def video_probe(source: Any) -> Probe:
    """A probe from a video: the views of its sampled frames, grouped by frame."""
    from ingest.fingerprints.video import frame_hashes

    return frames_probe((f.offset_ms, f.phash, f.dhash) for f in frame_hashes(source))


def frames_probe(frames: Iterable[tuple[int, int, int]]) -> Probe:
    groups: dict[int, int] = {}
    views = []
    for offset, p, d in frames:
        views.append((p, d, groups.setdefault(offset, len(groups))))
    return Probe("video", views)


def probe_from_hashes(hashes: Iterable[Hash]) -> Probe:
    """A probe from stored hashes (no rotations: those were tried when the item was ingested)."""
    pairs = _pair_up((h.variant, h.offset_ms, h.kind, h.value) for h in hashes)
    video = any(variant in VIDEO_VARIANTS for variant, _ in pairs)
    if video:
        return frames_probe((offset, p, d) for (_, offset), (p, d) in pairs.items())
    return Probe("photo", [(p, d, 0) for p, d in pairs.values()])


def _pair_up(rows: Iterable[tuple[str, int, str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """(variant, offset) -> (pHash, dHash), from rows of (variant, offset, kind, unsigned value)."""
    found: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    for variant, offset, kind, value in rows:
        found[(variant, offset)][kind] = value
    return {k: (v["phash"], v["dhash"]) for k, v in found.items() if "phash" in v and "dhash" in v}


class SimilarityIndex:
    """Every stored view (pHash, dHash) with its item, searchable by the rule in the module docstring."""

    def __init__(self) -> None:
        self.item_ids: list[str] = []
        self.item_of = np.empty(0, dtype=np.int64)
        self.is_video = np.empty(0, dtype=bool)
        self.phash = HammingIndex(np.empty(0, dtype=np.uint64))
        self.dhash = HammingIndex(np.empty(0, dtype=np.uint64))
        self.frames = np.empty(0, dtype=np.int64)  # per item: sampled frames (videos) or 1

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, int, int]]) -> SimilarityIndex:
        """Rows of (item_id, kind, variant, offset_ms, unsigned value)."""
        index = cls()
        index.extend(rows)
        return index

    def extend(self, rows: Iterable[tuple[str, str, str, int, int]]) -> None:
        """Add the fingerprints of further items (all of an item's rows at once)."""
        per_item: dict[str, list[tuple[str, int, str, int]]] = defaultdict(list)
        for item_id, kind, variant, offset, value in rows:
            per_item[item_id].append((variant, offset, kind, value))
        item_of, is_video, ps, ds, frames = [], [], [], [], []
        for item_id, item_rows in per_item.items():
            pairs = _pair_up(item_rows)
            if not pairs:
                continue
            index = len(self.item_ids)
            self.item_ids.append(item_id)
            video = any(variant in VIDEO_VARIANTS for variant, _ in pairs)
            frames.append(len({offset for _, offset in pairs}) if video else 1)
            for p, d in pairs.values():
                item_of.append(index)
                is_video.append(video)
                ps.append(p)
                ds.append(d)
        if not item_of:
            return
        self.item_of = np.concatenate([self.item_of, np.asarray(item_of, dtype=np.int64)])
        self.is_video = np.concatenate([self.is_video, np.asarray(is_video, dtype=bool)])
        self.frames = np.concatenate([self.frames, np.asarray(frames, dtype=np.int64)])
        self.phash.extend(np.asarray(ps, dtype=np.uint64))
        self.dhash.extend(np.asarray(ds, dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.item_of)

    def nbytes(self) -> int:
        return self.phash.nbytes() + self.dhash.nbytes() + self.item_of.nbytes + self.is_video.nbytes

    def _hits(self, probe: Probe, max_distance: int) -> list[tuple[int, int, int]]:
        """(row, probe view, distance) for every stored view within `max_distance` of a probe view."""
        qp = np.array([v[0] for v in probe.views], dtype=np.uint64)
        qd = np.array([v[1] for v in probe.views], dtype=np.uint64)
        hits: list[tuple[int, int, int]] = []
        if not self.phash.uses_tables and not self.dhash.uses_tables:
            # Small index: one vectorised pass over (rows x probe views), a block of rows at a time.
            for start in range(0, len(self), 1 << 14):
                p = self.phash.values[start : start + (1 << 14), None]
                d = self.dhash.values[start : start + (1 << 14), None]
                total = popcount(p ^ qp[None, :]).astype(np.int16) + popcount(d ^ qd[None, :])
                dist = (total + 1) // 2
                rows, views = np.nonzero(dist <= max_distance)
                hits += zip((rows + start).tolist(), views.tolist(), dist[rows, views].tolist(), strict=True)
            return hits
        # Large index: a pair within r has pHash or dHash within r, so look both up, then check both.
        for view, (p_value, d_value) in enumerate(zip(qp, qd, strict=True)):
            rows = np.union1d(self.phash.search(int(p_value), max_distance)[0],
                              self.dhash.search(int(d_value), max_distance)[0])
            if len(rows) == 0:
                continue
            total = popcount(self.phash.values[rows] ^ p_value).astype(np.int16) + popcount(
                self.dhash.values[rows] ^ d_value
            )
            dist = (total + 1) // 2
            keep = dist <= max_distance
            hits += [(r, view, dd) for r, dd in zip(rows[keep].tolist(), dist[keep].tolist(), strict=True)]
        return hits

    def search(self, probe: Probe, max_distance: int = DEFAULT_MAX_DISTANCE, exclude: str | None = None) -> list[Match]:
        """Items similar to the probe, best first; `exclude` (the query item itself) never appears."""
        if len(self) == 0 or not probe.views:
            return []
        want_video = probe.medium == "video"
        best: dict[int, int] = {}
        matched_groups: dict[int, set[int]] = defaultdict(set)
        for row, view, dist in self._hits(probe, max_distance):
            if bool(self.is_video[row]) != want_video:
                continue
            item = int(self.item_of[row])
            if dist < best.get(item, 65):
                best[item] = dist
            matched_groups[item].add(probe.views[view][2])
        matches = []
        for item, distance in best.items():
            item_id = self.item_ids[item]
            if item_id == exclude:
                continue
            if want_video:
                shorter = max(1, min(probe.groups, int(self.frames[item])))
                share = min(1.0, len(matched_groups[item]) / shorter)
                if share < MIN_FRAME_SHARE:
                    continue
                matches.append(Match(item_id, distance, share))
            else:
                matches.append(Match(item_id, distance))
        matches.sort(key=lambda m: (m.distance, -(m.frame_match_share or 0.0), m.id))
        return matches


# One cached index per catalog per process, refreshed by row id (an index is only a cache).
_cache: dict[str, tuple[tuple[int, int, int], SimilarityIndex]] = {}
_cache_lock = threading.Lock()


def catalog_keys(archive: Archive) -> CatalogKeys:
    """The catalog key that opens the fingerprints; `Locked` with what to do when this process has none."""
    from archive.catalog.sealing import catalog_keys as keys_for

    return keys_for(archive, "the near-duplicate search (fingerprints are sealed in the catalog)")


def load_index(archive: Archive) -> SimilarityIndex:
    """The index over every fingerprint in the catalog, reusing this process's copy when unchanged."""
    from sqlmodel import Session

    keys = catalog_keys(archive)
    with Session(read_only(archive.engine)) as session:
        return index_in(session, keys)


def index_in(session: Session, keys: CatalogKeys) -> SimilarityIndex:
    """The index as this session sees the catalog (inside an ingest's transaction: everything committed).

    Built in memory by opening the sealed rows: the catalog holds no
    fingerprint in clear. Rows written while locked (pending) join once settled.
    """
    from sqlalchemy import case, func
    from sqlmodel import col, select

    from archive.catalog.fingerprints import ItemFingerprints, open_hashes
    from archive.catalog.sealing import PENDING
    from archive.keys.catalog import CatalogKeyError

    key = str(session.get_bind().engine.url)
    with _cache_lock:
        pending = func.sum(case((col(ItemFingerprints.key_version) == PENDING, 1), else_=0))
        count, top, waiting = session.exec(
            select(func.count(col(ItemFingerprints.id)), func.max(col(ItemFingerprints.id)), pending)
        ).one()
        stamp = (int(count or 0), int(top or 0), int(waiting or 0))
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]

        def fetch(since: int) -> tuple[int, list[tuple[str, str, str, int, int]]]:
            query = select(ItemFingerprints.item_id, ItemFingerprints.key_version, ItemFingerprints.sealed).where(
                col(ItemFingerprints.id) > since, col(ItemFingerprints.key_version) != PENDING
            )
            rows: list[tuple[str, str, str, int, int]] = []
            opened = 0
            for item_id, version, blob in session.exec(query):
                opened += 1
                try:
                    hashes = open_hashes(keys, item_id, version, blob)
                except CatalogKeyError as exc:  # one altered row must not stop every ingest: left out, logged
                    logging.getLogger(__name__).warning("near-duplicate index: %s", exc)
                    continue
                rows += [(item_id, h.kind, h.variant, h.offset_ms, h.value) for h in hashes]
            return opened, rows

        if cached is not None and cached[0][1] < stamp[1] and cached[0][2] == stamp[2]:
            opened, added = fetch(cached[0][1])  # only what was committed since
            if cached[0][0] + opened == stamp[0]:
                index = cached[1]
                index.extend(added)
                _cache[key] = (stamp, index)
                return index
        index = SimilarityIndex.from_rows(fetch(0)[1])  # first use, or rows replaced, settled or removed
        _cache[key] = (stamp, index)
        return index


def probe_upload(source: bytes | Path) -> Probe:
    """Fingerprint bytes handed to the archive for comparison only, decoded in a sandbox child.

    The kind (picture or video) comes from the bytes, never from a name. Raises
    NoFingerprint (with the reason) when there is nothing to compare.
    """
    from ingest.fingerprints.common import NoFingerprint
    from ingest.media.sniff import HEAD_SIZE, identify
    from ingest.sandbox import SandboxFailure
    from ingest.steps.fingerprint import compute, medium_of

    if isinstance(source, bytes):
        head = source[:HEAD_SIZE]
    else:
        with open(source, "rb") as stream:
            head = stream.read(HEAD_SIZE)
    medium = medium_of(identify(head).mime)
    if medium is None:
        raise NoFingerprint("neither a picture nor a video that can be decoded")
    try:
        return compute(source, medium).probe
    except SandboxFailure as exc:
        raise NoFingerprint(str(exc)) from exc


def item_hashes(session: Session, keys: CatalogKeys, item_id: str) -> list[Hash]:
    """An item's stored fingerprints, opened."""
    from sqlmodel import select

    from archive.catalog.fingerprints import ItemFingerprints, open_hashes

    row = session.exec(select(ItemFingerprints).where(ItemFingerprints.item_id == item_id)).first()
    return [] if row is None else open_hashes(keys, row.item_id, row.key_version, row.sealed)


def _check_distance(max_distance: int) -> None:
    from archive.services.errors import ServiceError

    if not 0 <= max_distance <= 64:
        raise ServiceError(f"the largest distance must be between 0 and 64, not {max_distance}")


def _readers(role: Role) -> None:
    from archive.roles import documents
    from archive.services.errors import Forbidden

    if not documents(role):
        raise Forbidden(f"the near-duplicate search needs the custodian or investigator role, not {role}")


def _hidden_items(archive: Archive, role: Role) -> frozenset[str]:
    """The items a restricted case hides from the caller (`archive.records.compartments`)."""
    from sqlmodel import Session

    from archive.records.compartments import hidden_in, sees_all

    if sees_all(role):
        return frozenset()
    with Session(read_only(archive.engine)) as session:
        return hidden_in(archive, session, role).items


def similar_to_upload(
    archive: Archive, source: bytes | Path, max_distance: int = DEFAULT_MAX_DISTANCE, *, role: Role = Role.CUSTODIAN
) -> list[Match]:
    """Items that look like the bytes handed in (compared only, never ingested).

    `source` is the uploaded content itself, or a temporary file the caller
    spooled it to: never a path a remote caller chose, so nobody can make the
    server read its own files. Custodians and investigators; items a
    restricted case hides from the caller are never among the matches.
    """
    from archive.services.errors import ServiceError
    from ingest.fingerprints.common import NoFingerprint

    _readers(role)
    _check_distance(max_distance)
    catalog_keys(archive)  # locked: say so before decoding anything
    hidden = _hidden_items(archive, role)
    try:
        probe = probe_upload(source)
    except NoFingerprint as exc:
        raise ServiceError(f"no fingerprint: {exc}") from exc
    return [m for m in load_index(archive).search(probe, max_distance) if m.id not in hidden]


def similar_to_item(
    archive: Archive, ref: str, max_distance: int = DEFAULT_MAX_DISTANCE, *, role: Role = Role.CUSTODIAN
) -> list[Match]:
    """Items that look like an item already kept (an id or a unique prefix).

    The stored upright views are searched afresh and the candidates recorded at
    ingest (which also tried rotations and mirrors) are added. Custodians and
    investigators; an item a restricted case hides from the caller is not found,
    and never among the matches.
    """
    from sqlmodel import Session

    from archive.catalog.items import ItemStatus
    from archive.catalog.secrets import item_secret
    from archive.records.compartments import hidden_in
    from archive.services.errors import CheckFailed, ServiceError
    from archive.services.items import visible_item

    _readers(role)
    _check_distance(max_distance)
    keys = catalog_keys(archive)
    with Session(read_only(archive.engine)) as session:
        item = visible_item(session, archive, ref, role)
        hidden = hidden_in(archive, session, role).items
        if item.status == ItemStatus.MERGED:  # its fingerprints are its holder's: ask about that one
            holder = item_secret(keys, item).merged_into
            raise CheckFailed(f"item {item.id} was merged into item {holder} (the same bytes): "
                              f"ask `evidence similar {holder}`")
        hashes = item_hashes(session, keys, item.id)
        recorded = candidates_for(session, item.id)
    if not hashes:
        raise ServiceError(f"item {item.id} has no fingerprint (its record says why)")
    found = {m.id: m for m in load_index(archive).search(probe_from_hashes(hashes), max_distance, exclude=item.id)
             if m.id not in hidden}
    for c in recorded:
        if c["distance"] <= max_distance and c["id"] not in found and c["id"] not in hidden:
            found[c["id"]] = Match(c["id"], c["distance"], c.get("frame_match_share"))
    return sorted(found.values(), key=lambda m: (m.distance, -(m.frame_match_share or 0.0), m.id))


def record_candidates(session: Session, item_id: str, matches: list[Match], created_at: str) -> None:
    """Store near-duplicate candidates for an investigator to confirm; items are never merged."""
    from archive.catalog.fingerprints import Candidate

    for m in matches:
        session.add(
            Candidate(
                item_id=item_id,
                other_id=m.id,
                distance=m.distance,
                frame_match_share=m.frame_match_share,
                state="candidate",
                created_at=created_at,
            )
        )



def suggest_new(session: Session, item_id: str, matches: list[Match]) -> list[str]:
    """Record the matches not already suggested with the item (either way round); their ids."""
    from sqlalchemy import or_
    from sqlmodel import col, select

    from archive.catalog.fingerprints import Candidate
    from archive.custody.log import utc_now

    pairs = session.exec(
        select(Candidate).where(or_(col(Candidate.item_id) == item_id, col(Candidate.other_id) == item_id))
    ).all()
    known = {c.other_id if c.item_id == item_id else c.item_id for c in pairs}
    fresh = [m for m in matches if m.id not in known]
    record_candidates(session, item_id, fresh, utc_now())
    return [m.id for m in fresh]


def suggest_for_settled(session: Session, keys: CatalogKeys, item_id: str) -> list[str]:
    """Record the candidates an item ingested while locked could not get (its fingerprints just settled).

    Searched with its stored upright views (the rotations tried at ingest are
    not stored); a pair already suggested either way round is not suggested
    again. Returns the ids newly suggested.
    """
    hashes = item_hashes(session, keys, item_id)
    if not hashes:
        return []
    return suggest_new(session, item_id, index_in(session, keys).search(probe_from_hashes(hashes), exclude=item_id))
