"""Routes: log (see api.http.matrix for who may call each)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
