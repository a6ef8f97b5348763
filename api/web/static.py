"""Static files of the pages: our own (`api/web/static/`) and the front-end libraries npm installed.

The libraries are never fetched from a CDN (the archive often runs offline,
and a third-party script would see every page) and never copied into the
repository: `scripts/setup.sh` runs `npm ci` in `api/web/frontend/`, and only
the files named in `VENDOR` are served from there, by name, so nothing else
under `node_modules` is reachable. `[web] assets` (or `EVIDENCE_WEB_ASSETS`)
points at another `node_modules` for an installed copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

router = APIRouter()

OWN = Path(__file__).parent / "static"
NODE_MODULES = Path(__file__).parent / "frontend" / "node_modules"
VENDOR = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "tus.min.js": "tus-js-client/dist/tus.min.js",
    "chart.umd.js": "chart.js/dist/chart.umd.js",
    "leaflet.js": "leaflet/dist/leaflet.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "axe.min.js": "axe-core/axe.min.js",  # the accessibility check of the browser tests
}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2"}
CACHE = "public, max-age=3600"


def node_modules(request: Request) -> Path:
    configured = os.environ.get("EVIDENCE_WEB_ASSETS") or (
        request.app.state.runtime.settings.section("web") or {}).get("assets")
    return Path(str(configured)) if configured else NODE_MODULES


def vendor_available(request: Request) -> bool:
    """Whether the front-end libraries are installed (pages say so when they are not)."""
    return (node_modules(request) / VENDOR["htmx.min.js"]).is_file()


@router.get("/static/{name:path}", include_in_schema=False)
def static_file(request: Request, name: str) -> FileResponse:
    if name.startswith("vendor/"):
        relative = VENDOR.get(name.removeprefix("vendor/"))
        path = node_modules(request) / relative if relative else None
    else:
        candidate = (OWN / name).resolve()
        path = candidate if candidate.is_relative_to(OWN.resolve()) and "/." not in f"/{name}" else None
    if path is None or not path.is_file() or path.suffix not in TYPES:
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=TYPES[path.suffix], headers={"Cache-Control": CACHE})
