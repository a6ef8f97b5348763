"""The ways in: the `evidence` command line and (later) the HTTP API."""
