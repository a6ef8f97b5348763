"""The items pages (issue 13; see /work/design-issue13.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.web.forms import csrf_ok

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])
