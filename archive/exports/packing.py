"""Cutting a large export into parts of at most `--split-size` bytes, each a complete bag.

First-fit decreasing over the originals: every part carries the same records,
custody files and tag files (`overhead`), and each original costs its size plus
its framing (`per_file`: zip or tar headers, manifest lines). An original that
cannot fit even in an empty part goes alone in its own part, larger than the
limit (an original is never cut). The estimates below err on the large side.
"""

from __future__ import annotations

from archive.services.errors import ServiceError

AGE_CHUNK = 64 * 1024
AGE_TAG = 16
AGE_HEADER = 64 + 200  # version line, MAC line and nonce, plus one X25519 stanza (about 130 bytes) with margin
AGE_PER_RECIPIENT = 200
ZIP_PER_FILE = 30 + 20 + 24 + 46 + 28  # local header, zip64 extra, zip64 data descriptor, central entry, its extra
ZIP_END = 22 + 56 + 20  # end of central directory, zip64 end record and its locator
TAR_PER_FILE = 3 * 512 + 511  # a pax header block pair, the ustar header, data padding
TAR_END = 1024 + 10240  # two zero blocks, record padding
MANIFEST_LINE = 128 + 64 + 2 * 4  # sha512 hex, sha256 hex, separators, newlines (plus the path, counted apart)


def per_file_overhead(fmt: str, path: str, name: str = "") -> int:
    """Bytes one file adds beyond its contents: archive framing (the name twice in a zip) and manifest lines."""
    full = len(f"{name}/{path}".encode())
    framing = ZIP_PER_FILE + 2 * full if fmt == "zip" else TAR_PER_FILE + (full if full > 100 else 0)
    return framing + MANIFEST_LINE + 2 * len(path.encode())


def archive_overhead(fmt: str) -> int:
    """Bytes a zip or tar adds once."""
    return ZIP_END if fmt == "zip" else TAR_END


def encrypted_size(plain: int, recipients: int = 1) -> int:
    """An age file's size for `plain` bytes: header, then 16 bytes per 64 KiB chunk (at least one chunk)."""
    if recipients <= 0:
        return plain
    chunks = max(1, -(-plain // AGE_CHUNK))
    return AGE_HEADER + AGE_PER_RECIPIENT * (recipients - 1) + plain + chunks * AGE_TAG


def estimate_overhead(fmt: str, files: dict[str, int], *, name: str = "", recipients: int = 0) -> int:
    """What a part costs before any original: `files` (path -> size: the records, custody and tag files carried
    in every part) with their framing, the archive's end records and, encrypted, age's header and tags."""
    plain = archive_overhead(fmt) + sum(size + per_file_overhead(fmt, path, name) for path, size in files.items())
    return encrypted_size(plain, recipients) if recipients else plain


def plan_parts(sizes: dict[str, int], *, overhead: int, per_file: int, limit: int | None,
               encrypted: bool = False) -> list[list[str]]:
    """Item ids grouped into parts (first-fit decreasing; ids sorted within a part; parts in creation order).

    `limit` None: one part. Encrypted, each original also costs age's 16 bytes per 64 KiB."""
    if not sizes:
        return [[]]
    if limit is None:
        return [sorted(sizes)]
    if limit <= 0:
        raise ServiceError("the split size must be a positive number of bytes")
    if overhead + per_file >= limit:
        raise ServiceError(f"a part's records, custody and tag files alone take about {overhead} bytes: "
                           f"the split size {limit} is too small for any original")
    room = limit - overhead

    def cost(size: int) -> int:
        return size + per_file + ((-(-size // AGE_CHUNK)) * AGE_TAG if encrypted else 0)

    parts: list[list[str]] = []
    free: list[int] = []
    for item_id in sorted(sizes, key=lambda i: (-sizes[i], i)):
        need = cost(sizes[item_id])
        for index, left in enumerate(free):
            if need <= left:
                parts[index].append(item_id)
                free[index] -= need
                break
        else:
            parts.append([item_id])
            free.append(room - need)  # negative when the original alone exceeds the limit: nothing else joins
    return [sorted(part) for part in parts]
