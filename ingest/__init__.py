"""Ingest: the ordered pipeline of small steps every incoming file goes through."""
