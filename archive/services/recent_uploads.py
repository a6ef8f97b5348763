"""A contributor's own recent uploads, as WebDAV clients list them after a copy.

WebDAV apps (rclone, OpenArchive's Save) check what they sent by listing the
folder again. The archive has no folders and shows a contributor nothing of
the archive, so the listing is only what *this token* completed in the last
hour: the name the client gave (a label, never a path), the size and the time
received, read from the upload's own sealed row and its receipt. Nothing of
another contributor, another token of the same person, or an older upload, so
a stolen token reveals at most an hour of its own sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.services.accounts import Caller

WINDOW = timedelta(hours=1)
MAX_LISTED = 1000  # a listing stays bounded however busy the token was


@dataclass(frozen=True)
class RecentUpload:
    upload_id: str
    label: str  # the name as the client gave it (for WebDAV: the path under /dav/)
    size: int
    received: datetime


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _receipt_fields(note: str) -> dict[str, object]:
    """The fields of a stored receipt's text (the archive signed it; here it is only read)."""
    from archive.custody.receipts import parse_receipt_text

    text = note.split("\n\n", 1)[0] + "\n"
    return parse_receipt_text(text)


def recent_uploads(archive: Archive, caller: Caller, *, window: timedelta = WINDOW,
                   now: datetime | None = None) -> list[RecentUpload]:
    """This token's uploads completed within `window`, oldest first (Locked while the catalog key is)."""
    from sqlmodel import Session, select

    from archive.catalog.uploads import DONE, Upload, open_upload_fields
    from archive.custody.receipts import ReceiptError

    since = (now or datetime.now(UTC)) - window
    with Session(archive.engine) as session:
        rows = session.exec(
            select(Upload)
            .where(Upload.owner == caller.user_id, Upload.token_id == caller.token_id, Upload.state == DONE)
            .where(Upload.completed_at >= _stamp(since))  # type: ignore[operator]
            .order_by(Upload.completed_at)  # type: ignore[arg-type]
            .limit(MAX_LISTED)
        ).all()
    found: list[RecentUpload] = []
    for row in rows:
        fields = open_upload_fields(archive, row)
        note = fields.get("receipt")
        if not note:
            continue
        try:
            receipt = _receipt_fields(str(note))
        except ReceiptError:
            continue
        received = _parse(str(row.completed_at or receipt["received"]))
        if received < since:
            continue
        label = str(fields.get("filename") or row.id)
        found.append(RecentUpload(upload_id=row.id, label=label, size=int(str(receipt["size"])), received=received))
    return found
