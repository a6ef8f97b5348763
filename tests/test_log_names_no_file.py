"""The custody log is public and append-only: no event says what would pick out a known file.

The attack: whoever holds a known video reads its exact duration (or its frame
count, its width and height, its size) and looks for that figure in a log
handed to outsiders; a match says the archive holds it, whatever the salted
commitment hides. A generated video of a distinctive duration and size, and a
photo of distinctive dimensions, go through ingest and the worker that
fingerprints the rest of the video; then every figure of every event of the
log is compared with theirs.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Cli
from tests.video_maker import write_video

SECONDS, FPS, WIDTH, HEIGHT = 13.7, 10, 336, 184  # 137 frames; sampled about once a second: 14
PHOTO_WIDTH, PHOTO_HEIGHT = 1237, 813
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _figures(value: Any) -> list[float]:
    """Every number in an event's details: values, and numbers written inside strings (ids and hashes aside)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        words = re.split(r"[^0-9A-Za-z.]+", _UUID.sub(" ", value))
        return [float(w) for w in words if re.fullmatch(r"\d+(\.\d+)?", w)]
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in (*_figures(k), *_figures(v))]
    if isinstance(value, list):
        return [f for v in value for f in _figures(v)]
    return []


def test_no_event_gives_a_duration_frame_count_dimension_or_size(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.steps.fingerprint as step

    video = write_video(tmp_path / "clip.mp4", seed=5, duration=SECONDS, fps=FPS, size=(WIDTH, HEIGHT))
    photo = tmp_path / "photo.jpg"
    noise = np.random.default_rng(3).integers(0, 255, (PHOTO_HEIGHT // 8, PHOTO_WIDTH // 8, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((PHOTO_WIDTH, PHOTO_HEIGHT), Image.Resampling.BICUBIC).save(photo, quality=90)

    monkeypatch.setattr(step, "INGEST_VIDEO_BUDGET", 0.0)  # one frame at ingest: the worker resumes the rest
    reports = cli.json_lines("ingest", str(video), str(photo))
    assert all(r["status"] == "preserved" for r in reports), reports
    cli("worker", "--once")
    shown = [cli.json("show", r["id"]) for r in reports]
    assert shown[0]["metadata"]["duration"] == pytest.approx(SECONDS, abs=0.2)  # known to the catalog, sealed
    assert (shown[1]["metadata"]["width"], shown[1]["metadata"]["height"]) == (PHOTO_WIDTH, PHOTO_HEIGHT)

    with sqlite3.connect(cli.home / "catalog.db") as db:
        events = [(kind, json.loads(details)) for kind, details in
                  db.execute("SELECT event_type, details FROM events ORDER BY seq")]
        (job,) = db.execute("SELECT state FROM jobs WHERE kind = 'fingerprint'").fetchall()
        stored = [(cli.home / "storage" / backend / name).stat().st_size
                  for backend, name in db.execute("SELECT backend, object_name FROM replicas")]
    assert job == ("done",)
    fingerprinted = [d for kind, d in events if kind == "fingerprint"]
    assert len(fingerprinted) == 3  # the video at ingest and resumed, the photo
    assert any(d.get("resumed") for d in fingerprinted) and all("complete" in d for d in fingerprinted[:1])

    frames, sampled = round(SECONDS * FPS), 14
    forbidden = {
        SECONDS, SECONDS * 1000, 13, 14,  # the duration, in s (rounded either way) and ms
        frames, 2 * frames, sampled, 2 * sampled, sampled - 1, 2 * (sampled - 1),  # frames and hash counts
        WIDTH, HEIGHT, WIDTH * HEIGHT, PHOTO_WIDTH, PHOTO_HEIGHT, PHOTO_WIDTH * PHOTO_HEIGHT,
        video.stat().st_size, photo.stat().st_size, *stored,  # any size, plaintext or stored (originals, manifests)
    }
    for kind, details in events:
        found = {f for f in _figures(details) if any(abs(f - x) < 1e-9 for x in forbidden)}
        assert not found, (kind, details)
