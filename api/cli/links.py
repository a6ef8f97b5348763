"""CLI commands of the documentation model (filled in by issue 10's work)."""

from __future__ import annotations

from typing import Any

COMMANDS: list[Any] = []
