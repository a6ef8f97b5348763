"""The catalog and its rules: items, provenance, the custody log, exports."""
