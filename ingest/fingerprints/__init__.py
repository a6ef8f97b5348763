"""Perceptual fingerprints of photos and videos, for finding the same picture re-shared.

Pure functions only: nothing here touches the catalog. `photo` hashes still
images, `video` hashes sampled frames; both return `Hash` values that
`archive.similarity` indexes and compares.
"""

from ingest.fingerprints.common import Hash, NoFingerprint, to_signed, to_unsigned

__all__ = ["Hash", "NoFingerprint", "to_signed", "to_unsigned"]
