"""Ingest steps, one per module; `ingest.pipeline.default_steps` orders them."""
