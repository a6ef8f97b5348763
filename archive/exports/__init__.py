"""Evidence bundles: BagIt bags with originals, records, custody proofs and a signature (issue 12)."""
