"""Who may call what: the authorization matrix, written once, as data.

Every route of the application has exactly one row here, keyed by its method
and path template; a route without a row is refused to everyone (and a test
fails). `PUBLIC` routes need no token. `/dav/` routes take HTTP Basic auth
whose password is a token; every other route takes only `Authorization:
Bearer`. Finer rules (a contributor sees only its own uploads and receipts,
an investigator only the restricted cases it belongs to, an auditor only
non-personal fields) are the service functions' and the routes' own checks.
"""

from __future__ import annotations

from archive.roles import Role

C, INV, A, K = Role.CUSTODIAN, Role.INVESTIGATOR, Role.AUDITOR, Role.CONTRIBUTOR
PUBLIC: frozenset[Role] = frozenset()  # no token needed
DOCUMENTERS = frozenset({C, INV})
UPLOADERS = frozenset({C, INV, K})
# The custody log names items, incidents, victims, cases and members by id, restricted ones
# included: it is the auditors' (and custodians') read-only view, not the investigators'.
LOG_READERS = frozenset({C, A})
EVERY_ROLE = frozenset({C, INV, A, K})  # public keys: anyone with a token may verify what it was given
CATALOG_READERS = frozenset({C, INV, A})  # auditors get non-personal fields only
OPERATORS = frozenset({C, A})

ROUTES: dict[tuple[str, str], frozenset[Role]] = {
    # service
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/metrics"): OPERATORS,
    # uploads (tus 1.0.0) and receipts
    ("OPTIONS", "/v1/uploads"): PUBLIC,  # tus discovery: versions and extensions, nothing of the archive
    ("POST", "/v1/uploads"): UPLOADERS,
    ("HEAD", "/v1/uploads/{upload_id}/{secret}"): UPLOADERS,
    ("PATCH", "/v1/uploads/{upload_id}/{secret}"): UPLOADERS,
    ("DELETE", "/v1/uploads/{upload_id}/{secret}"): UPLOADERS,
    ("GET", "/v1/receipts/key"): EVERY_ROLE,
    ("GET", "/v1/receipts/{upload_id}"): UPLOADERS,
    ("GET", "/v1/receipts/{upload_id}/proof"): UPLOADERS,
    # items
    ("GET", "/v1/items"): CATALOG_READERS,
    ("GET", "/v1/items/{item_id}"): CATALOG_READERS,
    ("GET", "/v1/items/{item_id}/original"): DOCUMENTERS,
    ("GET", "/v1/items/{item_id}/similar"): DOCUMENTERS,
    ("POST", "/v1/similar"): DOCUMENTERS,
    ("PATCH", "/v1/items/{item_id}/provenance"): DOCUMENTERS,  # an arrival's channel and source record
    # the documentation model
    ("GET", "/v1/incidents"): DOCUMENTERS,
    ("POST", "/v1/incidents"): DOCUMENTERS,
    ("GET", "/v1/incidents/{ref}"): DOCUMENTERS,
    ("PATCH", "/v1/incidents/{ref}"): DOCUMENTERS,
    ("POST", "/v1/incidents/{ref}/attributions"): DOCUMENTERS,
    ("GET", "/v1/victims"): DOCUMENTERS,
    ("POST", "/v1/victims"): DOCUMENTERS,
    ("GET", "/v1/victims/{ref}"): DOCUMENTERS,
    ("PATCH", "/v1/victims/{ref}"): DOCUMENTERS,
    ("POST", "/v1/victims/{ref}/consents"): DOCUMENTERS,
    ("POST", "/v1/victims/{ref}/identify"): DOCUMENTERS,
    ("GET", "/v1/victim-matches"): DOCUMENTERS,  # reports of one person (withheld persons: custodians only)
    ("POST", "/v1/victim-matches/suggest"): DOCUMENTERS,
    ("POST", "/v1/victim-matches/confirm"): DOCUMENTERS,
    ("POST", "/v1/victim-matches/reject"): DOCUMENTERS,
    ("GET", "/v1/sources"): DOCUMENTERS,
    ("POST", "/v1/sources"): DOCUMENTERS,
    ("GET", "/v1/sources/{ref}"): DOCUMENTERS,
    ("PATCH", "/v1/sources/{ref}"): DOCUMENTERS,
    ("POST", "/v1/sources/{ref}/interviews"): DOCUMENTERS,
    ("GET", "/v1/links"): DOCUMENTERS,
    ("POST", "/v1/links"): DOCUMENTERS,
    ("GET", "/v1/links/{link_id}"): DOCUMENTERS,
    ("DELETE", "/v1/links/{link_id}"): DOCUMENTERS,
    ("GET", "/v1/candidates"): DOCUMENTERS,
    ("POST", "/v1/candidates/confirm"): DOCUMENTERS,
    ("POST", "/v1/candidates/reject"): DOCUMENTERS,
    ("GET", "/v1/search"): DOCUMENTERS,
    ("GET", "/v1/stats"): DOCUMENTERS,
    ("POST", "/v1/import"): frozenset({C}),
    ("GET", "/v1/vocab"): DOCUMENTERS,  # what forms offer: parties, incident types, governorates …
    # evidence bundles (restricted cases only for their members: the service's own check)
    ("POST", "/v1/exports"): DOCUMENTERS,  # streams the bundle
    ("POST", "/v1/exports/plan"): DOCUMENTERS,  # what an export would carry and withhold, and why
    ("GET", "/v1/exports/key"): EVERY_ROLE,  # the bundle verifier key
    ("GET", "/v1/recipients"): DOCUMENTERS,
    ("POST", "/v1/recipients"): frozenset({C}),
    ("DELETE", "/v1/recipients/{name}"): frozenset({C}),
    # storage and the custody log
    ("GET", "/v1/storage"): CATALOG_READERS,
    ("GET", "/v1/log/checkpoint"): LOG_READERS,
    ("GET", "/v1/log/vkey"): EVERY_ROLE,  # a contributor checks its own tlog-proof with it
    ("GET", "/v1/log/proof/{seq}"): LOG_READERS,
    ("GET", "/v1/log/consistency"): LOG_READERS,
    ("GET", "/v1/log/tile/{path:path}"): LOG_READERS,
    # WebDAV for field apps (Basic auth, password = a token)
    ("OPTIONS", "/dav/{path:path}"): UPLOADERS,
    ("PROPFIND", "/dav/{path:path}"): UPLOADERS,
    ("MKCOL", "/dav/{path:path}"): UPLOADERS,
    ("PUT", "/dav/{path:path}"): UPLOADERS,
}

# The web pages (`api.web`): authenticated by the session cookie (a Bearer token works too, for tools).
SIGNED_IN = EVERY_ROLE
WEB_ROUTES: dict[tuple[str, str], frozenset[Role]] = {
    # sign-in (the routes check their own one-time and half-signed-in cookies), language, our static files
    ("GET", "/signin"): PUBLIC,
    ("POST", "/signin"): PUBLIC,
    ("GET", "/signin/code"): PUBLIC,
    ("POST", "/signin/code"): PUBLIC,
    ("GET", "/enrol"): PUBLIC,
    ("POST", "/enrol"): PUBLIC,
    ("POST", "/signout"): SIGNED_IN,
    ("GET", "/lang/{code}"): PUBLIC,
    ("GET", "/static/{name:path}"): PUBLIC,
    # dashboard
    ("GET", "/"): SIGNED_IN,  # a contributor sees its own recent uploads only
    # items
    ("GET", "/items"): CATALOG_READERS,
    ("GET", "/items/{item_id}"): CATALOG_READERS,  # auditors: no media, no personal fields
    ("GET", "/items/{item_id}/preview"): DOCUMENTERS,  # only with the view token of a page view
    ("GET", "/items/{item_id}/original"): DOCUMENTERS,
    ("GET", "/items/{item_id}/events/{seq}/proof"): CATALOG_READERS,
    ("POST", "/items/{item_id}/links"): DOCUMENTERS,
    ("POST", "/items/{item_id}/candidates/{other}/{decision}"): DOCUMENTERS,
    # incidents, victims, sources
    ("GET", "/incidents"): DOCUMENTERS,
    ("GET", "/incidents/new"): DOCUMENTERS,
    ("POST", "/incidents"): DOCUMENTERS,
    ("GET", "/incidents/{ref}"): DOCUMENTERS,
    ("GET", "/incidents/{ref}/edit"): DOCUMENTERS,
    ("POST", "/incidents/{ref}"): DOCUMENTERS,
    ("POST", "/incidents/{ref}/attributions"): DOCUMENTERS,
    ("POST", "/incidents/{ref}/links"): DOCUMENTERS,
    ("GET", "/victims"): DOCUMENTERS,
    ("GET", "/victims/new"): DOCUMENTERS,
    ("POST", "/victims"): DOCUMENTERS,
    ("GET", "/victims/{ref}"): DOCUMENTERS,
    ("GET", "/victims/{ref}/edit"): DOCUMENTERS,
    ("POST", "/victims/{ref}"): DOCUMENTERS,
    ("GET", "/sources"): DOCUMENTERS,
    ("GET", "/sources/new"): DOCUMENTERS,
    ("POST", "/sources"): DOCUMENTERS,
    ("GET", "/sources/{ref}"): DOCUMENTERS,
    ("GET", "/sources/{ref}/edit"): DOCUMENTERS,
    ("POST", "/sources/{ref}"): DOCUMENTERS,
    ("POST", "/sources/{ref}/identity"): frozenset({C}),  # a witness's real identity: custodians, confirmed
    # statistics, upload, export
    ("GET", "/stats"): DOCUMENTERS,
    ("GET", "/upload"): UPLOADERS,
    ("GET", "/export"): DOCUMENTERS,
    ("POST", "/export/plan"): DOCUMENTERS,
    ("POST", "/export/bundle"): DOCUMENTERS,
}
ROUTES.update(WEB_ROUTES)
WEB_TEMPLATES = frozenset(template for _, template in WEB_ROUTES)

# The API routes a signed-in browser may call with its session cookie instead of a token (the upload page's
# tus client, its receipts, the public keys). Unsafe methods then need `X-CSRF-Token`.
COOKIE_API = frozenset({
    ("POST", "/v1/uploads"),
    ("HEAD", "/v1/uploads/{upload_id}/{secret}"),
    ("PATCH", "/v1/uploads/{upload_id}/{secret}"),
    ("DELETE", "/v1/uploads/{upload_id}/{secret}"),
    ("GET", "/v1/receipts/key"),
    ("GET", "/v1/receipts/{upload_id}"),
    ("GET", "/v1/receipts/{upload_id}/proof"),
    ("GET", "/v1/log/vkey"),
    ("GET", "/v1/exports/key"),
})

BASIC_PREFIX = "/dav/"


def is_web(path_template: str) -> bool:
    """Whether a route is one of the web pages (answered in HTML, signed in by cookie)."""
    return path_template in WEB_TEMPLATES


def allowed(method: str, path_template: str) -> frozenset[Role] | None:
    """The roles a route admits, `PUBLIC` (empty) for no token, None for a route the matrix does not know."""
    return ROUTES.get((method.upper(), path_template))
