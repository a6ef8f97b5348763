"""An open archive: settings, the catalog engine and the acting operator.

Every service function takes an `Archive`, so the CLI and the HTTP API call the
same code with the same rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from archive.config import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from storage.base import Backend


@dataclass
class Archive:
    settings: Settings
    actor: str
    _engine: Engine | None = field(default=None, repr=False)
    log_size_at_open: int = 0

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, as_name: str | None = None) -> Archive:
        settings = load_settings(home)
        return cls(settings=settings, actor=settings.actor(as_name))

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from archive.db import make_engine, migrate

            self._engine = make_engine(self.settings.catalog_url())
            migrate(self._engine)
            self.log_size_at_open = self.log_size()
        return self._engine

    def log_size(self) -> int:
        """How many custody events the log holds now."""
        from sqlalchemy import text

        from archive.db import read_only

        with read_only(self.engine).connect() as conn:
            return int(conn.execute(text("SELECT size FROM log_head WHERE id = 1")).scalar_one())

    def added_events(self) -> bool:
        """Whether events were appended (by anyone) since this archive opened its catalog."""
        return self._engine is not None and self.log_size() > self.log_size_at_open

    @cached_property
    def backends(self) -> dict[str, Backend]:
        from storage.registry import backends

        return backends(self.settings)

    def policy_backends(self) -> list[Backend]:
        from storage.registry import policy_backends

        return policy_backends(self.settings)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
