"""Fingerprint quality on copies of the corpus photos: recall at the default threshold, no false match.

Copies are made from each photo as a viewer sees it (orientation applied);
the index holds the original files. A copy counts towards recall when its own
picture is found, and any other corpus picture found is a false match.
Copies smaller than 64 px on a side cannot be fingerprinted and are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from archive.similarity import DEFAULT_MAX_DISTANCE, SimilarityIndex, photo_probe
from ingest.fingerprints.common import NoFingerprint
from ingest.fingerprints.photo import photo_hashes
from tests.fingerprint_copies import EXTRA, REQUIRED, corpus_photos, group_of, upright


@pytest.fixture(scope="module")
def originals(corpus: Path) -> dict[Path, Image.Image]:
    """Fingerprintable corpus photos and their upright pictures."""
    out = {}
    for path in corpus_photos(corpus / "media"):
        try:
            photo_hashes(path)
        except NoFingerprint:
            continue
        picture = upright(path)
        if picture is not None:
            out[path] = picture
    assert len(out) >= 35, "the corpus should give at least 35 fingerprintable photos"
    return out


@pytest.fixture(scope="module")
def index(originals: dict[Path, Image.Image]) -> SimilarityIndex:
    rows = [(str(p), h.kind, h.variant, h.offset_ms, h.value) for p in originals for h in photo_hashes(p)]
    return SimilarityIndex.from_rows(rows)


def _evaluate(
    originals: dict[Path, Image.Image], index: SimilarityIndex, transforms: dict[str, Callable[[Image.Image], bytes]]
) -> tuple[dict[str, list[int]], list[tuple[str, str, str, int]]]:
    recall: dict[str, list[int]] = {}
    false: list[tuple[str, str, str, int]] = []
    for path, picture in originals.items():
        for name, make in transforms.items():
            try:
                probe = photo_probe(make(picture))
            except NoFingerprint:
                continue  # the copy is under 64 px on a side
            matches = index.search(probe, DEFAULT_MAX_DISTANCE)
            found = {group_of(Path(m.id)) for m in matches}
            hit = recall.setdefault(name, [0, 0])
            hit[1] += 1
            hit[0] += group_of(path) in found
            false += [(name, str(path), m.id, m.distance) for m in matches if group_of(Path(m.id)) != group_of(path)]
    return recall, false


def _report(title: str, recall: dict[str, list[int]]) -> float:
    total = sum(v[0] for v in recall.values()) / max(1, sum(v[1] for v in recall.values()))
    print(f"\n{title}: overall {total:.3f} " + " ".join(f"{k} {v[0]}/{v[1]}" for k, v in recall.items()))
    return total


def test_required_copies_recall_and_no_false_match(originals: dict[Path, Image.Image], index: SimilarityIndex) -> None:
    recall, false = _evaluate(originals, index, REQUIRED)
    total = _report("required copies", recall)
    assert not false, f"false matches: {false}"
    assert total >= 0.95
    assert all(v[1] > 0 for v in recall.values())


def test_rotated_mirrored_cropped_letterboxed_grey_copies(
    originals: dict[Path, Image.Image], index: SimilarityIndex
) -> None:
    recall, false = _evaluate(originals, index, EXTRA)
    _report("extra copies", recall)
    assert not false, f"false matches: {false}"
    for name, (hit, total) in recall.items():
        assert hit / total >= 0.9, f"{name}: {hit}/{total}"


def test_distinct_corpus_photos_never_match_and_orientations_all_match(
    originals: dict[Path, Image.Image], index: SimilarityIndex
) -> None:
    for path in originals:
        matches = index.search(photo_probe(path), DEFAULT_MAX_DISTANCE, exclude=str(path))
        others = {Path(m.id) for m in matches}
        same = {p for p in originals if p != path and group_of(p) == group_of(path)}
        assert others == same, f"{path.name}: found {sorted(o.name for o in others)}"
    orientation = [p for p in originals if p.parent.name == "orientation"]
    assert len(orientation) == 8
