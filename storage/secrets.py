"""Storage credentials: a secrets file beside the keys, or the environment; never the catalog.

The file is `keys/storage-secrets.toml`, mode 0600, one table per site:

    [site-c]
    access_key = "…"
    secret_key = "…"
    sse_c_key = "…"     # base64 of 32 bytes, for --sse sse-c

It is re-read whenever it changes (a stat per use), so rotating a key needs no
restart. A site the file does not name falls back to the environment
(`EVIDENCE_STORAGE_<NAME>_ACCESS_KEY`, `…_SECRET_KEY`, `…_SSE_C_KEY`). A file
that others can read is refused: its sites are reported unavailable, with why.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import tomllib
from pathlib import Path

from storage.base import StorageError
from storage.s3_common import env_prefix

SECRETS_NAME = "storage-secrets.toml"
FIELDS = {"access_key": "ACCESS_KEY", "secret_key": "SECRET_KEY", "sse_c_key": "SSE_C_KEY"}


class Secrets:
    """Where credentials come from for one process; cheap to ask again and again."""

    def __init__(self, path: Path, environ: os._Environ[str] | dict[str, str] | None = None) -> None:
        self.path = path
        self._environ = environ
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._file: dict[str, dict[str, str]] = {}
        self._problem: str | None = None

    def _reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._file, self._problem = None, {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stat.S_IMODE(st.st_mode) & 0o077:
            self._file, self._problem = {}, f"{self.path} is readable by others (make it mode 0600)"
            return
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            # The parser's message may quote a line of the file: name the place only.
            self._file, self._problem = {}, f"{self.path} cannot be read ({type(exc).__name__})"
            return
        self._file = {
            str(site): {key: str(value) for key, value in table.items() if key in FIELDS}
            for site, table in data.items()
            if isinstance(table, dict)
        }
        self._problem = None

    def environ_for(self, name: str) -> dict[str, str]:
        """The credentials of site `name` as `EVIDENCE_STORAGE_<NAME>_*` variables.

        Raises `StorageError` when the secrets file exists but cannot be trusted.
        """
        with self._lock:
            self._reload()
            problem, table = self._problem, self._file.get(name)
        if problem is not None:
            raise StorageError(problem)
        prefix = env_prefix(name)
        if table is not None:
            return {prefix + FIELDS[key]: value for key, value in table.items()}
        environ = os.environ if self._environ is None else self._environ
        return {key: value for key, value in environ.items() if key.startswith(prefix)}

    def fingerprint(self, name: str) -> str:
        """A digest of a site's credentials, so a pool knows when to build a new client."""
        try:
            values = sorted(self.environ_for(name).items())
        except StorageError as exc:
            values = [("problem", str(exc))]
        return hashlib.sha256(repr(values).encode()).hexdigest()
