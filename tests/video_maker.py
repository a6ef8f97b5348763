"""Test videos made with PyAV: a moving scene, cuts of it, re-encodes, letterboxed copies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def scene(seed: int, t: float, width: int = 320, height: int = 180) -> np.ndarray:
    """An RGB frame at time t: a fixed textured background and a few blobs drifting slowly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 3, 3)
        base[..., c] = 110 + 60 * np.sin(2 * np.pi * (fx * xx / width + fy * yy / height) + ph * 6)
    for _ in range(5):
        cx, cy, vx, vy, r = rng.uniform(0, 1, 5)
        colour = rng.uniform(0, 255, 3)
        x = (cx + 0.04 * vx * t) % 1 * width
        y = (cy + 0.04 * vy * t) % 1 * height
        mask = ((xx - x) ** 2 + (yy - y) ** 2) < (20 + 30 * r) ** 2
        base[mask] = colour
    return base.clip(0, 255).astype(np.uint8)


def write_video(
    path: Path,
    seed: int,
    start: float = 0.0,
    duration: float = 8.0,
    fps: int = 10,
    size: tuple[int, int] = (320, 180),
    letterbox: int = 0,
    codec: str = "libx264",
) -> Path:
    """Encode `scene(seed)` from `start` for `duration` seconds, scaled to `size`; `letterbox` adds black bars (px)."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height + 2 * letterbox
        stream.pix_fmt = "yuv420p"
        for i in range(round(duration * fps)):
            picture = scene(seed, start + i / fps)
            if (width, height) != (picture.shape[1], picture.shape[0]):
                picture = np.asarray(Image.fromarray(picture).resize((width, height), Image.Resampling.BILINEAR))
            if letterbox:
                picture = np.pad(picture, ((letterbox, letterbox), (0, 0), (0, 0)))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
