"""Previews: the thumbnails and poster frames the web pages show, and who saw them.

A preview is made at ingest (`ingest.steps.preview`), stripped of all
metadata and age-encrypted to the preview identity; this module opens it for
a custodian or investigator who may see the item, never for an item linked
to a witness's interview (a face or a place a witness's account could be
traced from): such previews are deleted in the transaction that makes the
link, and refused here whatever the catalog still holds.

Seeing previews is an *access* custody event, one per page view (not per
picture): the page records the view with `record_preview_view`, then gives
each image a `view_token` bound to the browser session, the view and the
item, a keyed hash under the catalog key's lookup key. The image route only
checks the token (`check_view_token`), so a page of fifty thumbnails costs
one event, and no image can be fetched by a session that had no recorded
page view showing it.

An item whose file yields no preview gets a row of kind `none` (no
ciphertext): `backfill_previews` skips it unless asked to retry.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.roles import Role, sees_personal
from archive.services.errors import Forbidden, Invalid, Locked, NotFound, ServiceError

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from ingest.pipeline import Ingestion
    from ingest.steps.preview import PreviewResult

KIND_NONE = "none"  # the file yields no preview: nothing to retry at every back-fill
VIEW_PURPOSE = "preview-view"  # the keyed hash's purpose: never equal to another lookup's
VIEW_ACTION = "view previews"


def _need_viewer(role: Role) -> None:
    if not sees_personal(role):
        raise Forbidden(f"previews are for custodians and investigators, not {role}")


# --------------------------------------------------------------------------- interviews


def interview_linked(session: Session, item_ids: Iterable[str] | None = None) -> set[str]:
    """Which of `item_ids` (every item, for None) are linked to a witness's interview: an active
    source-item link to, or an arrival handed over by, a source with at least one interview."""
    from sqlmodel import col, select

    from archive.catalog.items import Provenance
    from archive.records.tables import Interview, Link

    wanted = None if item_ids is None else sorted(set(item_ids))
    if wanted == []:
        return set()
    interviewed = select(Interview.source_id)
    linked = select(Link.b_id).where(Link.kind == "source_item", Link.active == True,  # noqa: E712
                                     col(Link.a_id).in_(interviewed))
    handed = select(Provenance.item_id).where(col(Provenance.source_id).in_(interviewed))
    if wanted is not None:
        linked = linked.where(col(Link.b_id).in_(wanted))
        handed = handed.where(col(Provenance.item_id).in_(wanted))
    return set(session.exec(linked).all()) | set(session.exec(handed).all())


def drop_previews_linked_to_interviews(session: Session, item_ids: Iterable[str] | None = None) -> int:
    """Delete the previews of those of `item_ids` (every item, for None) linked to a witness's interview,
    in the caller's transaction; how many went. Call it wherever such a link is made."""
    from sqlmodel import col, delete

    from archive.catalog.web import Preview

    linked = interview_linked(session, item_ids)
    if not linked:
        return 0
    result = session.exec(delete(Preview).where(col(Preview.item_id).in_(sorted(linked))))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


# --------------------------------------------------------------------------- storing


def store_preview(session: Session, item_id: str, result: PreviewResult | None, *, created_at: str | None = None
                  ) -> None:
    """Put an item's preview (or, with None, the mark that its file yields none), replacing any."""
    from archive.catalog.web import Preview
    from archive.custody.log import utc_now
    from ingest.steps.preview import MEDIA_TYPE

    now = created_at or utc_now()
    if result is None:
        row = Preview(item_id=item_id, kind=KIND_NONE, media_type="", sealed=b"", width=0, height=0, created_at=now)
    else:
        row = Preview(item_id=item_id, kind=result.kind, media_type=MEDIA_TYPE, sealed=result.sealed,
                      width=result.width, height=result.height, created_at=now)
    session.merge(row)


# --------------------------------------------------------------------------- reading


def preview_for(archive: Archive, item_id: str, *, role: Role) -> tuple[bytes, str]:
    """The item's preview (JPEG bytes, media type), decrypted in memory with the preview identity.

    `Forbidden` for auditors and contributors; `NotFound` when the item is
    hidden from the caller, has no preview, or is linked to a witness's
    interview (the same message: a refusal must not tell which); `Locked`
    when the preview identity is locked in this process.
    """
    from sqlmodel import Session

    from archive.age import AgeError, decrypt_bytes
    from archive.catalog.web import Preview
    from archive.db import read_only
    from archive.services.items import visible_item

    _need_viewer(role)
    with Session(read_only(archive.engine)) as session:
        item = visible_item(session, archive, item_id, role)
        row = session.get(Preview, item.id)
        if row is None or row.kind == KIND_NONE or not row.sealed or interview_linked(session, [item.id]):
            raise NotFound(f"no preview of item {item.id}")
        sealed, media_type = bytes(row.sealed), row.media_type
    identities = archive.runtime.keys.preview_identities()
    try:
        return decrypt_bytes(sealed, identities), media_type
    except AgeError as exc:
        raise ServiceError(f"the preview of item {item.id} does not open with the preview identity "
                           f"({type(exc).__name__}): `evidence previews backfill --retry` makes it again") from None


def with_previews(archive: Archive, item_ids: list[str]) -> list[str]:
    """Those of `item_ids` that have a preview to show (in their order): a page draws thumbnails for these only."""
    from sqlmodel import Session

    from archive.db import read_only

    wanted = list(dict.fromkeys(i for i in item_ids if i))
    if not wanted:
        return []
    with Session(read_only(archive.engine)) as session:
        return _with_previews(session, wanted)


def _with_previews(session: Session, wanted: list[str]) -> list[str]:
    from sqlmodel import col, select

    from archive.catalog.web import Preview

    held = set(session.exec(select(Preview.item_id).where(col(Preview.item_id).in_(wanted),
                                                           Preview.kind != KIND_NONE)).all())
    held -= interview_linked(session, held)
    return [i for i in wanted if i in held]


def record_preview_view(archive: Archive, item_ids: list[str], *, role: Role, page: str) -> None:
    """One `access` custody event for a page view showing the previews of `item_ids` (nothing for none).

    Only the items that have a preview to show are listed (`with_previews`).
    `page` names the page (its path; a query string is dropped: search
    words are not for the log). A view of one item's page carries that item
    on the event, so its custody timeline shows the view.
    """
    from archive.custody.log import ACCESS, append_event
    from archive.db import transaction

    _need_viewer(role)
    wanted = list(dict.fromkeys(i for i in item_ids if i))
    if not wanted:
        return
    where = page.split("?", 1)[0].split("#", 1)[0][:200]
    with transaction(archive.engine) as session:
        shown = _with_previews(session, wanted)
        if not shown:
            return
        append_event(session, ACCESS, actor=archive.actor, item_id=shown[0] if len(shown) == 1 else None,
                     details={"action": VIEW_ACTION, "page": where, "items": shown, "role": str(role)})


def new_view_id() -> str:
    """A fresh id for one page view, to bind its image tokens to."""
    return "view-" + secrets.token_hex(8)


def _view_value(session_id: str, view_id: str, item_id: str) -> str:
    parts = (session_id, view_id, item_id)
    if not all(parts) or any("\x00" in p for p in parts):
        raise Invalid("a view token binds a session, a page view and an item, each named")
    return "\x00".join(parts)


def view_token(archive: Archive, session_id: str, view_id: str, item_id: str) -> str:
    """The token an image request of page view `view_id` in browser session `session_id` shows for `item_id`
    (a keyed hash under the catalog key: only this archive can make one). `Locked` without the catalog key."""
    return archive.runtime.keys.catalog().lookup(VIEW_PURPOSE, _view_value(session_id, view_id, item_id))


def check_view_token(archive: Archive, session_id: str, view_id: str, item_id: str, token: str) -> bool:
    """Whether `token` is the one `view_token` gave for this session, view and item (under any held key
    version, compared in constant time). `Locked` without the catalog key."""
    try:
        value = _view_value(session_id, view_id, item_id)
    except Invalid:
        return False
    given = token.encode("ascii", "replace")
    return any(hmac.compare_digest(given, expected.encode("ascii"))
               for expected in archive.runtime.keys.catalog().lookups(VIEW_PURPOSE, value))


# --------------------------------------------------------------------------- back-fill


@dataclass
class PreviewsBackfilled:
    """What `backfill_previews` did."""

    missing: int  # items that lacked a preview before this run
    made: int = 0
    none: int = 0  # files that yield no preview (marked, not tried again unless asked)
    remaining: int = 0  # still missing after this run (beyond `limit`, or not decodable now)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_previews(session: Session, *, retry: bool = False) -> list[tuple[str, str]]:
    """(item id, medium) of the photos and videos with no preview, oldest first; interview-linked ones never."""
    from sqlmodel import col, select

    from archive.catalog.items import Item, ItemStatus
    from archive.catalog.metadata import ItemMetadata
    from archive.catalog.web import Preview
    from ingest.steps.preview import medium_for

    have = {item_id: kind for item_id, kind in session.exec(select(Preview.item_id, Preview.kind)).all()}
    detected = dict(session.exec(select(ItemMetadata.item_id, ItemMetadata.media_type)).all())
    items = session.exec(select(Item.id, Item.media_type, Item.status).order_by(col(Item.created_at), col(Item.id)))
    found: list[tuple[str, str]] = []
    for item_id, media_type, status in items.all():
        kind = have.get(item_id)
        if status == ItemStatus.MERGED or (kind is not None and not (retry and kind == KIND_NONE)):
            continue
        medium = medium_for(media_type or detected.get(item_id))
        if medium is not None:
            found.append((item_id, medium))
    linked = interview_linked(session, [i for i, _ in found])
    return [(i, m) for i, m in found if i not in linked]


def backfill_previews(archive: Archive, limit: int, *, retry: bool = False) -> PreviewsBackfilled:
    """Make previews for up to `limit` photos and videos ingested before previews existed (or, with `retry`,
    whose file yielded none). Reads each original through the access identity (an access event each, as
    every read); `Locked` when it is locked here, ServiceError without a preview identity."""
    from sqlmodel import Session

    from archive.db import read_only
    from archive.services.analysis import NeedsIdentity, plaintext
    from ingest.steps.preview import NO_RECIPIENT

    if limit < 1:
        raise Invalid("limit: at least 1")
    recipient = archive.runtime.keys.preview_recipient()
    if recipient is None:
        raise ServiceError(NO_RECIPIENT)
    with Session(read_only(archive.engine)) as session:
        todo = missing_previews(session, retry=retry)
    result = PreviewsBackfilled(missing=len(todo))
    for item_id, medium in todo[:limit]:
        try:
            with plaintext(archive, item_id, purpose="preview back-fill") as source:
                made, _ = _make_and_store(archive, item_id, medium, source, recipient)
        except NeedsIdentity as exc:
            raise Locked(f"{exc}; previews made so far: {result.made}") from None
        except NotFound:
            continue  # gone meanwhile
        except ServiceError as exc:
            result.problems.append(f"{item_id}: {exc}")
            continue
        if made is None:
            result.none += 1
        else:
            result.made += 1
    with Session(read_only(archive.engine)) as session:
        result.remaining = len(missing_previews(session))
    return result


def preview_after_analysis(archive: Archive, ingestion: Ingestion, source: bytes | Path) -> None:
    """The preview of an item an `analysis` job decoded (a large upload's deferred analysis, or one whose
    decoder crashed at ingest), from that job's plaintext; its failure replaces the item's earlier preview
    failure on `ingestion.errors`. Nothing when it has a preview (or a settled none), is no photo or video,
    or is linked to an interview."""
    from sqlmodel import Session

    from archive.catalog.web import Preview
    from archive.db import read_only
    from ingest.steps.preview import PREVIEW, medium_for

    item_id = ingestion.item_id
    medium = medium_for(ingestion.media_type)
    recipient = archive.runtime.keys.preview_recipient()
    if item_id is None or medium is None or recipient is None:
        return
    with Session(read_only(archive.engine)) as session:
        if session.get(Preview, item_id) is not None or interview_linked(session, [item_id]):
            return
    ingestion.errors = [e for e in ingestion.errors if e.get("step") != PREVIEW]
    reason = _make_and_store(archive, item_id, medium, source, recipient)[1]
    if reason is not None:
        ingestion.fail(PREVIEW, f"no preview: {reason}")


def _make_and_store(archive: Archive, item_id: str, medium: str, source: bytes | Path, recipient: str
                    ) -> tuple[PreviewResult | None, str | None]:
    """Decode, encrypt and store one item's preview; (it, None), or (None, why) when none could be made, marked
    so (after this try with more time than ingest gives, a crash or hang is not tried again unless asked)."""
    from archive.catalog.items import Item
    from archive.db import transaction
    from ingest.steps.preview import BACKFILL_LIMITS, NoPreview, make_preview

    made: PreviewResult | None = None
    reason: str | None = None
    try:
        made = make_preview(source, medium, recipient, limits=BACKFILL_LIMITS)
    except NoPreview as exc:
        reason = str(exc)
    with transaction(archive.engine) as session:
        if session.get(Item, item_id) is not None:
            store_preview(session, item_id, made)
            drop_previews_linked_to_interviews(session, [item_id])  # linked while it was being decoded
    return made, reason
