"""Receipts and their proofs, for the contributor who uploaded (and custodians); the HTTP API's use cases.

A receipt is signed once, when an upload completes (`archive.services.uploads`
stores the note sealed in the upload's row); here it is only read back. Anyone
but the uploader (the same user id) or a custodian is told exactly what an
unknown upload id tells them, so a receipt id confirms nothing to a stranger.

The proof is the C2SP tlog-proof of the arrival's ingestion event
(`archive.custody.proof_format`). When no checkpoint covers the event yet,
this process signs one (as `evidence log checkpoint` does), at most once per
`[log] checkpoint_delay_seconds`, so asking for proofs cannot make the log
sign without bound; until then the answer is `NotCovered` with a Retry-After.
A contributor's proof carries the event's leaf hash, not its entry: the
entry's details are the log readers' to see, not the contributor's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from archive.roles import Role
from archive.services.errors import NotFound, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.custody.proof_format import Extra
    from archive.services.accounts import Caller

UNKNOWN = "no receipt for this upload id"


class NotCovered(ServiceError):
    """The event is in the log but no checkpoint covers it yet: ask again after `retry_after` seconds.

    409 with Retry-After, as `/v1/log/proof/{seq}` answers the same condition.
    """

    status_code = 409
    code = "not_covered"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def receipt_key(archive: Archive) -> str:
    """The receipt verifier key (C2SP vkey), for contributors to pin and `evidence receipt verify`."""
    from archive.custody.receipts import receipt_vkey

    return receipt_vkey(archive)


def get_receipt(archive: Archive, caller: Caller, upload_id: str) -> str:
    """The signed receipt of `upload_id`: for its uploader or a custodian; NotFound (as for an unknown id) else.

    The owner is checked on the row's clear columns before anything sealed is
    opened, so a stranger gets the same 404 even while the catalog key is locked.
    """
    from archive.catalog.uploads import ACTIVE, stored_receipt
    from archive.services.uploads import upload_row

    row = upload_row(archive, upload_id) if 0 < len(upload_id) <= 64 else None
    if row is None or (caller.role != Role.CUSTODIAN and row.owner != caller.user_id):
        raise NotFound(UNKNOWN)
    found = stored_receipt(archive, upload_id)
    if found is None:
        raise NotFound(UNKNOWN)
    if found[1] is None:
        if row.state in ACTIVE:
            raise NotFound("this upload is not complete: it has no receipt yet")
        raise NotFound(f"this upload ended {row.state}: nothing was acknowledged, so there is no receipt")
    return found[1]


def _delay(archive: Archive) -> float:
    from archive.custody.service import CHECKPOINT_DELAY_SECONDS

    return float(archive.settings.section("log").get("checkpoint_delay_seconds", CHECKPOINT_DELAY_SECONDS))


def proof_of_event(archive: Archive, seq: int, *, extra: Extra = "entry", may_sign: bool = True) -> str:
    """The tlog-proof of event `seq`, signing a checkpoint first when none covers it (see the module)."""
    from archive.custody.proof_format import not_covered, tlog_proof
    from archive.custody.service import CustodyError, maybe_checkpoint

    try:
        return tlog_proof(archive, seq, extra=extra)
    except CustodyError as exc:
        if not not_covered(str(exc)):
            raise
    if may_sign:
        try:
            maybe_checkpoint(archive, _delay(archive))
        except Exception:  # noqa: BLE001, S110 - cannot sign here now: the worker's next checkpoint covers it
            pass
        try:
            return tlog_proof(archive, seq, extra=extra)
        except CustodyError as exc:
            if not not_covered(str(exc)):
                raise
    wait = max(1, math.ceil(_delay(archive)))
    raise NotCovered(f"event {seq} is not covered by a checkpoint yet; ask again in {wait} s", wait)


def receipt_proof(archive: Archive, caller: Caller, upload_id: str, *, may_sign: bool = True) -> str:
    """The tlog-proof of the event a receipt names, for whoever may read the receipt.

    The receipt is checked under the archive's own receipt key first, so a
    damaged row can never send a proof of some other event.
    """
    from archive.custody.receipts import receipt_vkey, verify_receipt

    fields = verify_receipt(get_receipt(archive, caller, upload_id), receipt_vkey(archive))
    # The entry itself says whether the file was already held: only for those who read the log (custodians;
    # an investigator's own upload of a file held in a case it cannot see must not tell it so).
    extra: Extra = "entry" if caller.role == Role.CUSTODIAN else "leaf"
    return proof_of_event(archive, int(fields["event"]), extra=extra, may_sign=may_sign)
