"""Where a storage site really keeps its bytes, to tell whether two sites are one place.

Two sites on one disk are one copy, whatever their names: a folder reached
through a symlink, a bind mount of part of another site, an S3 endpoint
spelled `localhost` instead of `127.0.0.1`. Each site gets a few location
keys (paths of parts); two sites overlap when a key of one is a prefix of a
key of the other.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

Key = tuple[str, ...]


def _unescape(text: str) -> str:
    """Mount paths as the kernel writes them: space, tab and backslash octal-escaped."""
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def _mounts() -> list[tuple[str, str, str]]:
    """(device, root inside its file system, mount point) of every mount, from /proc/self/mountinfo."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            found.append((fields[2], _unescape(fields[3]), _unescape(fields[4])))
    return found


def _physical(path: Path) -> Key | None:
    """The folder as (device, path inside that file system): the same for every bind mount of it."""
    best: tuple[str, str, str] | None = None
    for device, root, point in _mounts():
        if (path == Path(point) or Path(point) in path.parents) and (best is None or len(point) > len(best[2])):
            best = (device, root, point)
    if best is None:
        return None
    device, root, point = best
    inner = Path(root) / path.relative_to(point)
    return ("dev", device, *inner.parts)


def _addresses(host: str, port: int) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return {host}


def location_keys(kind: str, options: dict[str, object], home: Path) -> list[Key]:
    """The keys of one site's place (see the module docstring)."""
    if kind == "local":
        path = Path(str(options["path"]))
        real = (path if path.is_absolute() else home / path).resolve()
        keys: list[Key] = [("file", *real.parts)]
        physical = _physical(real)
        if physical is not None:
            keys.append(physical)
        return keys
    endpoint = str(options.get("endpoint") or "https://s3.amazonaws.com")
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    host = (parts.hostname or "").lower()
    prefix = [part for part in str(options.get("prefix") or "").split("/") if part]
    bucket = str(options.get("bucket"))
    return [("s3", address, str(port), bucket, *prefix) for address in sorted(_addresses(host, port))]


def overlap(a: list[Key], b: list[Key]) -> bool:
    """Whether two sites' places are the same, or one holds the other."""
    return any(x[: len(y)] == y or y[: len(x)] == x for x in a for y in b)


def home_key(home: Path) -> Key:
    return ("file", *home.resolve().parts)


