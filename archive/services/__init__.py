"""Use cases, one function each, called by the CLI and the HTTP API alike."""
