"""The pages, one module per area; each exposes `router` (see `api.web.ROUTERS`)."""
