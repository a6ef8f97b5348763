"""The HTTP API (FastAPI): thin routes over `archive.services`, roles checked on every route (`matrix`)."""
