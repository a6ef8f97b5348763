"""The investigator's web pages, served by the same FastAPI application as the API.

Pages are rendered on the server (Jinja2, `render`) and made lively with htmx;
they call the same service functions as the API and the CLI, behind the same
roles (every page has its row in `api.http.matrix.WEB_ROUTES`), signed in by a
session cookie (`archive.services.web_sessions`) instead of a bearer token.

- `render`: the template environment and what every page gets;
- `i18n`: Arabic and English (gettext catalogs under `locale/`);
- `errors`: error pages, and the sign-in redirect;
- `forms`: the CSRF check of every unsafe page request;
- `static`: our scripts and styles, and the npm-installed libraries;
- `routes/`: one module per area of the pages.
"""

from __future__ import annotations

import importlib

from fastapi import FastAPI

ROUTERS = ("language", "signin", "dashboard", "items", "records", "stats", "upload", "export")


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to the API's application."""
    from api.web import errors, static

    app.include_router(static.router)
    for name in ROUTERS:
        module = importlib.import_module(f"api.web.routes.{name}")
        app.include_router(module.router)
    errors.install(app)
