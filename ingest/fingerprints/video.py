"""Perceptual fingerprints of videos: pHash and dHash of sampled frames.

Why this shape: re-shared footage is cut, re-encoded, downscaled and
letterboxed, and its keyframes land elsewhere. So frames are sampled on the
clock (the first frame at or after every `INTERVAL` seconds) rather than at
the source's keyframes, decoded small and grey, letterbox bars trimmed, and
hashed like a photo's whole view. A clip cut from a longer video then shares
most of its sampled frames with the source, each within a few bits.
Decoding is bounded: at most `MAX_FRAMES` samples and a budget of work per run
(`MAX_DECODE_SECONDS` by default). A run that stops on its budget says how far
it got, and the next run resumes from there (the worker finishes long videos).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import IO, Any

from ingest.fingerprints.common import MIN_SIDE, Hash, NoFingerprint

INTERVAL = 1.0  # seconds between sampled frames (about one per second at most)
MAX_FRAMES = 3600  # an hour of samples; longer videos are sampled more sparsely
MAX_DECODE_SECONDS = 120.0
FRAME_VARIANTS = ("frame", "tframe")  # whole frame; frame with letterbox bars trimmed

Source = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass(frozen=True)
class FrameHash:
    """The pHash and dHash of one view of one sampled frame."""

    offset_ms: int
    variant: str
    phash: int
    dhash: int


@dataclass
class Sampled:
    """Frames sampled from one stretch of a video, and how far the sampling got.

    `covered` is the time (seconds from the start of the video) before which every
    sample was taken; `complete` is True when decoding reached the end of the stream.
    """

    frames: list[tuple[int, Any]]
    duration: float | None
    covered: float
    complete: bool


@dataclass
class VideoFingerprint:
    """The frame hashes of one run, and how much of the video they cover."""

    frames: list[FrameHash]
    duration: float | None
    covered: float
    complete: bool


def sample_video(
    source: Source, interval: float = INTERVAL, *, start: float = 0.0, budget: float = MAX_DECODE_SECONDS
) -> Sampled:
    """Frames sampled about every `interval` seconds from `start`, for at most `budget` seconds of work.

    A run that stops on its budget says so (`complete` False, `covered` where it
    stopped), so the rest can be finished later from there.
    """
    import io

    import av

    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        container: Any = av.open(fp)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any demuxer failure is a reason, never a crash
        raise NoFingerprint(f"cannot open video: {type(exc).__name__}: {exc}") from exc
    frames: list[tuple[int, Any]] = []
    complete = False
    try:
        if not container.streams.video:
            raise NoFingerprint("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height and min(width, height) < MIN_SIDE:
            raise NoFingerprint(f"video is {width}x{height}, smaller than {MIN_SIDE} px on a side")
        duration = float(container.duration / 1e6) if container.duration else None
        step = max(interval, duration / MAX_FRAMES) if duration else interval
        deadline = time.monotonic() + budget
        next_t = start
        if start > 0 and stream.time_base:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        try:
            for frame in container.decode(stream):
                if frames and time.monotonic() > deadline:  # every run makes progress, however small its budget
                    break
                t = frame.time if frame.time is not None else 0.0
                if t + 1e-6 < next_t:
                    continue
                w, h = frame.width, frame.height
                scale = min(1.0, 256 / max(w, h))
                small = frame.reformat(
                    width=max(1, round(w * scale)), height=max(1, round(h * scale)), format="gray"
                ).to_image().convert("L")
                frames.append((round(t * 1000), small))
                next_t = (int(t / step) + 1) * step
                if len(frames) >= MAX_FRAMES:
                    break
            else:
                complete = True
        except NoFingerprint:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream keeps the frames read so far
            if not frames and start == 0:
                raise NoFingerprint(f"cannot decode video: {type(exc).__name__}: {exc}") from exc
            complete = True  # nothing more can be decoded: the rest of the stream is unreadable
    finally:
        container.close()
    if not frames and start == 0:
        raise NoFingerprint("no decodable video frame")
    covered = (duration or next_t) if complete else next_t
    return Sampled(frames, duration, covered, complete)


def sample_frames(source: Source, interval: float = INTERVAL) -> list[tuple[int, Any]]:
    """(offset in ms, small grey PIL image) for frames sampled about every `interval` seconds."""
    return sample_video(source, interval).frames


def fingerprint_video(
    source: Source, interval: float = INTERVAL, *, start: float = 0.0, budget: float = MAX_DECODE_SECONDS
) -> VideoFingerprint:
    """pHash and dHash of every sampled frame of one run (whole, and bars trimmed when it has any)."""
    from ingest.fingerprints.photo import frame_views

    sampled = sample_video(source, interval, start=start, budget=budget)
    out: list[FrameHash] = []
    for offset_ms, image in sampled.frames:
        if min(image.size) < 16:
            continue
        for variant, phash, dhash in frame_views(image):
            out.append(FrameHash(offset_ms, variant, phash, dhash))
    if not out and start == 0:
        raise NoFingerprint("every sampled frame is uniform: nothing to fingerprint")
    return VideoFingerprint(out, sampled.duration, sampled.covered, sampled.complete)


def frame_hashes(source: Source, interval: float = INTERVAL) -> list[FrameHash]:
    """pHash and dHash of every sampled frame (whole, and bars trimmed when it has any)."""
    return fingerprint_video(source, interval).frames


def video_hashes(source: Source) -> list[Hash]:
    """The hashes stored for a video: two per view of every sampled frame."""
    out: list[Hash] = []
    for f in frame_hashes(source):
        out.append(Hash("phash", f.variant, f.phash, f.offset_ms))
        out.append(Hash("dhash", f.variant, f.dhash, f.offset_ms))
    return out


def looks_like_video(source: Source) -> bool:
    """Whether PyAV finds a video stream with more than one frame (a still image opens as one frame)."""
    import io

    import av

    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with av.open(fp) as opened:  # type: ignore[arg-type]
            container: Any = opened
            if not container.streams.video:
                return False
            stream = container.streams.video[0]
            return bool(stream.frames > 1 or (container.duration or 0) > 0 and container.format.name != "image2")
    except Exception:  # noqa: BLE001 - not a container PyAV can read
        return False
