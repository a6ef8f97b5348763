"""What an evidence bundle holds and where: the names every writer and reader of bundles agree on.

A bundle is a BagIt 1.0 bag (RFC 8493) in one top folder, serialized as a zip
(or a tar) and, with a recipient, age-encrypted as a whole. The layout (paths
relative to the top folder):

    bagit.txt, bag-info.txt, bagit-profile.json, README.txt, verify.py, withheld.txt
    manifest-sha256.txt, manifest-sha512.txt, tagmanifest-sha256.txt, tagmanifest-sha512.txt
    signature.note                     C2SP signed note over tagmanifest-sha256.txt's SHA-256
    data/originals/<item-id>.<ext>     every original, bit for bit
    data/records/{items,incidents,victims,sources,links,changes}.json, the same as .csv, schema.json
    data/records/certificates/<item-id>.pdf
    data/custody/events/<seq>.json     each event's exact leaf bytes (RFC 8785, evidence-event/1)
    data/custody/proofs/<seq>.tlog-proof
    data/custody/checkpoint.txt, log.vkey, bundle.vkey, salts.json

The standalone checker (`verify_script.py`, shipped as `verify.py`) keeps its
own copy of the few constants it needs: it must run with nothing of this
project installed. Its constants are the source; this module imports them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from archive.exports.verify_script import (
    BUNDLE_VKEY,
    CERTIFICATES,
    CHECKPOINT,
    EVENTS,
    LOG_VKEY,
    ORIGINALS,
    PROOFS,
    RECORDS,
    SALTS,
    SALTS_FORMAT,
    SIGNATURE,
    SIGNATURE_HEADER,
    TAG_FILES,
    signature_text,
)

__all__ = [
    "BUNDLE_VKEY", "CERTIFICATES", "CHECKPOINT", "EVENTS", "LOG_VKEY", "ORIGINALS", "PROOFS", "RECORDS", "SALTS",
    "SALTS_FORMAT", "SIGNATURE", "SIGNATURE_HEADER", "TAG_FILES", "signature_text",
]

RECORDS_FORMAT = "evidence-records/1"
PROFILE_IDENTIFIER = "urn:evidence-archive:bagit-profile:evidence-bundle:1"
PROFILE_VERSION = "1.3.0"

PURPOSES = ("un", "court", "partner", "internal")
RECIPIENT_KINDS = ("un", "court", "partner")
# The family's consent a purpose needs, per victim (archive.records.vocab.CONSENT_SCOPES).
CONSENT_SCOPE = {"un": "un_bodies", "court": "courts"}
FORMATS = ("zip", "tar")

EXPORT_STARTED = "export started"  # details.action of the `dissemination` event
TRANSFERRED = "transfer"  # details.action of the `transfer` event

_SIZE = re.compile(r"([1-9][0-9]*)([KMG]?)(i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_BY_TYPE = {
    "image/jpeg": "jpg", "image/png": "png", "image/heic": "heic", "image/heif": "heif", "image/webp": "webp",
    "image/gif": "gif", "image/tiff": "tif", "video/mp4": "mp4", "video/quicktime": "mov", "video/x-msvideo": "avi",
    "video/webm": "webm", "video/x-matroska": "mkv", "video/3gpp": "3gp", "audio/mpeg": "mp3", "audio/mp4": "m4a",
    "audio/ogg": "ogg", "application/pdf": "pdf",
}


def new_export_id() -> str:
    """A random export id: it says nothing about what the bundle holds."""
    return f"exp-{secrets.token_hex(8)}"


def parse_size(text: str) -> int:
    """`--split-size`: a byte count with an optional K, M or G (powers of 1024), e.g. 700M, 4G, 1048576."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (a whole number with an optional K, M or G, e.g. 700M)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def fingerprint(age_recipient: str) -> str:
    """A recipient key's fingerprint in events and reports: SHA-256 (hex) of its `age1…` text."""
    return hashlib.sha256(age_recipient.strip().encode("ascii")).hexdigest()


def extension(media_type: str | None, original_name: str | None = None) -> str:
    """The file extension an original gets in the bag: from its media type (identified from its bytes), else
    `bin`; never from its name, which the rules may withhold (`statement.fatima` would say part of it)."""
    del original_name
    return _BY_TYPE.get(media_type or "", "bin")


def original_path(item_id: str, media_type: str | None, original_name: str | None = None) -> str:
    """`data/originals/<item-id>.<ext>`: the id names the file, never the original name."""
    return f"{ORIGINALS}{item_id}.{extension(media_type, original_name)}"


def bag_name(export_id: str, part: int = 1, parts: int = 1) -> str:
    """The bag's top folder: `evidence-bundle-<export id>`, with `-<k>-of-<n>` when split."""
    return f"evidence-bundle-{export_id}" + (f"-{part}-of-{parts}" if parts > 1 else "")


def part_path(out: Path, part: int, parts: int) -> Path:
    """Where part k of n goes: `--out` itself for one part, else `<stem>-<k>-of-<n>.<suffixes>`
    (`bundle.zip.age` -> `bundle-2-of-3.zip.age`)."""
    if parts == 1:
        return out
    base, dot, rest = out.name.partition(".")
    return out.with_name(f"{base}-{part}-of-{parts}{dot}{rest}")


@dataclass(frozen=True)
class Withheld:
    """One reason something was left out: counts and reasons, never identities."""

    what: str  # victim | item | victim name | witness identity | record state | provenance text …
    reason: str  # a stable key, e.g. "no_consent_un_bodies"
    count: int
    why: str  # one plain English sentence

    def as_dict(self) -> dict[str, object]:
        return {"what": self.what, "reason": self.reason, "count": self.count, "why": self.why}


@dataclass(frozen=True)
class BundleInfo:
    """What every part of one export says about itself (bag-info.txt, README.txt, certificates)."""

    export_id: str
    origin: str  # the log's origin (`evidence-archive/<id>`)
    purpose: str
    created_at: str  # RFC 3339 UTC
    organization: str
    contact_name: str
    contact_email: str
    encrypted: bool
    recipients: tuple[str, ...] = ()  # key fingerprints
    to: str | None = None  # the registered recipient's name, when exported to one
    started_seq: int = 0  # the `dissemination` (export started) event
    checkpoint_size: int = 0
    part: int = 1
    parts: int = 1
    counts: dict[str, int] = field(default_factory=dict)  # items, incidents, victims, sources, links, events

    @property
    def name(self) -> str:
        return bag_name(self.export_id, self.part, self.parts)
