"""`evidence recipients` (issue 12): being written."""

from __future__ import annotations

from typing import Any

COMMANDS: list[Any] = []
