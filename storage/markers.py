"""Claiming a storage site for an archive: the marker written at `init` and `storage add`.

`ensure_marker` is idempotent (a site already carrying this archive's marker
is fine) and refuses a site that belongs to another archive, so two archives
can never share a disk or a bucket prefix by mistake. Reading the marker back
(`Backend.check_marker`) is what keeps an unmounted disk from looking empty.
"""

from __future__ import annotations

from storage.base import Backend, Marker, MarkerExists, StorageError, utc_timestamp


class ForeignMarker(StorageError):
    """The site already carries the marker of another archive."""


def ensure_marker(backend: Backend, archive_id: str) -> Marker:
    """The site's marker, written now if it has none; raises `ForeignMarker` if it is another archive's.

    Also sets `backend.expected_archive_id`, so the backend enforces the marker from now on.
    """
    found = backend.read_marker()
    if found is None:
        marker = Marker(archive_id=archive_id, backend=backend.name, created_at=utc_timestamp())
        try:
            backend.write_marker(marker)
            found = marker
        except MarkerExists:  # another process claimed it a moment ago: read what it wrote
            found = backend.read_marker()
            if found is None:
                raise StorageError(f"storage {backend.name!r}: marker reported present but cannot be read") from None
    if found.archive_id != archive_id:
        raise ForeignMarker(
            f"storage {backend.name!r} belongs to archive {found.archive_id} (its marker says so); "
            "use a new folder, bucket or prefix for this archive"
        )
    backend.expected_archive_id = archive_id
    return found
