"""Video fingerprints: the corpus pair matches, cuts, re-encodes, downscales and letterboxed copies are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.similarity import SimilarityIndex, video_probe
from ingest.fingerprints.common import NoFingerprint
from ingest.fingerprints.video import sample_frames, video_hashes
from tests.video_maker import write_video


def _index(named: dict[str, Path]) -> SimilarityIndex:
    return SimilarityIndex.from_rows(
        (name, h.kind, h.variant, h.offset_ms, h.value) for name, path in named.items() for h in video_hashes(path)
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "source": write_video(d / "source.mp4", seed=1, duration=12),
        "unrelated": write_video(d / "unrelated.mp4", seed=2, duration=12),
        # A cut that starts between two sampled seconds, smaller, at another frame rate.
        "clip": write_video(d / "clip.mp4", seed=1, start=3.45, duration=5, size=(212, 120), fps=15),
        "upscaled_clip": write_video(d / "upscaled.mp4", seed=1, start=6.5, duration=4, size=(640, 360), fps=25),
        "letterboxed": write_video(d / "letterboxed.mp4", seed=1, duration=12, letterbox=45),
        "vp9": write_video(d / "reencoded.webm", seed=1, start=2.0, duration=6, codec="libvpx-vp9"),
    }


def test_corpus_source_and_reshared_clip_match_and_the_other_does_not(corpus: Path) -> None:
    video = corpus / "media/video"
    index = _index({"phone": video / "phone_gradients.mp4", "other": video / "other_sierpinski.webm"})
    found = index.search(video_probe(video / "reshare_gradients_clip.mp4"))
    assert [m.id for m in found] == ["phone"]
    assert found[0].frame_match_share is not None and found[0].frame_match_share >= 0.5
    clip_index = _index({"clip": video / "reshare_gradients_clip.mp4"})
    assert [m.id for m in clip_index.search(video_probe(video / "phone_gradients.mp4"))] == ["clip"]
    assert clip_index.search(video_probe(video / "other_sierpinski.webm")) == []


def test_about_one_frame_per_second_is_sampled(corpus: Path) -> None:
    frames = sample_frames(corpus / "media/video/phone_gradients.mp4")
    offsets = [offset for offset, _ in frames]
    assert 11 <= len(offsets) <= 13
    assert all(b - a >= 960 for a, b in zip(offsets, offsets[1:], strict=False))


@pytest.mark.parametrize("copy", ["clip", "upscaled_clip", "letterboxed", "vp9"])
def test_cut_reencoded_resized_letterboxed_copies_are_found(made: dict[str, Path], copy: str) -> None:
    index = _index({"source": made["source"], "unrelated": made["unrelated"]})
    found = index.search(video_probe(made[copy]))
    assert [m.id for m in found] == ["source"], found
    # And from the other side: the long source finds the short copy.
    reverse = _index({copy: made[copy]}).search(video_probe(made["source"]))
    assert [m.id for m in reverse] == [copy]


def test_unrelated_video_is_not_found(made: dict[str, Path]) -> None:
    index = _index({"source": made["source"]})
    assert index.search(video_probe(made["unrelated"])) == []


def test_truncated_or_broken_video_gives_a_reason_or_the_frames_it_has(made: dict[str, Path], tmp_path: Path) -> None:
    data = made["source"].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    try:
        hashes = video_hashes(truncated)
    except NoFingerprint as exc:
        assert str(exc)
    else:
        assert hashes
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0\0\0\x18ftypmp42" + b"\x17" * 500)
    with pytest.raises(NoFingerprint):
        video_hashes(garbage)
