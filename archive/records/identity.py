"""A witness's real identity and contact details: an age file to the custodian recipients alone.

Why a second layer: the source's sealed fields are under the catalog key,
which every unlocked server and investigator's process holds. The identity is
encrypted once more, inside them, to the custodian recipients only (the
archive's recipients less the access identity, which servers use to read
originals), so a stolen catalog key with the database, or an unlocked server,
still cannot name the witness: reading it needs a custodian's age identity,
which belongs offline.

The plaintext is `{"format": "evidence-identity/1", "identity": ...}` (an object
of text fields such as name and phone, or one text), padded like every sealed
field so the ciphertext's length says little; the stored value is the age file
in base64 (it is kept in the source's sealed state, so its history holds it
too, still encrypted).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.services.errors import Invalid, Locked, ServiceError

if TYPE_CHECKING:
    from archive.age import Identity, Recipient
    from archive.context import Archive

FORMAT = "evidence-identity/1"
MAX_TEXT = 10_000
MAX_FIELDS = 32


def check_identity(value: Any) -> dict[str, str] | str:
    """A real identity as given: an object of short text fields (name, phone, …) or one text.

    The error never repeats the value: it is a person's name and contacts.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise Invalid("identity: empty")
        if len(text) > MAX_TEXT:
            raise Invalid(f"identity: longer than {MAX_TEXT} characters")
        return text
    if isinstance(value, dict):
        if not value or len(value) > MAX_FIELDS:
            raise Invalid(f"identity: an object of 1 to {MAX_FIELDS} text fields")
        out: dict[str, str] = {}
        for key, field in value.items():
            if not isinstance(key, str) or not key.strip() or len(key) > 64:
                raise Invalid("identity: each field name is text of at most 64 characters")
            if not isinstance(field, (str, int)) or isinstance(field, bool):
                raise Invalid(f"identity: field {key[:64]!r} must be text")
            text = str(field).strip()
            if len(text) > MAX_TEXT:
                raise Invalid(f"identity: field {key[:64]!r} is longer than {MAX_TEXT} characters")
            out[key.strip()] = text
        return out
    raise Invalid("identity: give an object of text fields (JSON) or a text")


def parse_identity_text(data: str) -> dict[str, str] | str:
    """What `--identity-file` holds: a JSON object, else the text as it is."""
    stripped = data.strip()
    if stripped.startswith("{"):
        try:
            return check_identity(json.loads(stripped))
        except json.JSONDecodeError:
            raise Invalid("identity: the file starts with '{' but is not a JSON object") from None
    return check_identity(stripped)


def custodian_recipients(archive: Archive) -> list[Recipient]:
    """The archive's recipients less the access identity (which unlocked servers hold): custodians and escrow."""
    access = archive.runtime.keys.access_recipient()
    recipients = [r for r in archive.recipients() if str(r) != access]
    if not recipients:
        raise ServiceError("no custodian recipient is configured (only the access identity): a witness's identity "
                           "would be readable by every unlocked server; add one with `evidence encrypt-to add`")
    return recipients


def seal_identity(archive: Archive, value: Any) -> str:
    """The identity, checked, as an age file (base64) to the custodian recipients only."""
    from archive.age import encrypt_bytes
    from archive.keys.catalog import padded_json

    checked = check_identity(value)
    data = padded_json({"format": FORMAT, "identity": checked})
    return base64.b64encode(encrypt_bytes(data, custodian_recipients(archive))).decode("ascii")


def custodian_identities(archive: Archive, identity_path: Path | None) -> list[Identity]:
    """The custodian's age identity: the file given (`--identity`), else `keys/custodian.key` in the home.

    Never the access identity: it must not open a witness's identity.
    """
    from archive.age import AgeError, Identity

    path = identity_path or archive.settings.custodian_identity_path
    if not path.is_file():
        if identity_path is None:
            raise Locked("a witness's identity opens only with a custodian identity: none is in this home "
                         "(pass --identity with the custodian key)")
        raise ServiceError(f"no identity file at {path}")
    try:
        identities = Identity.read(path)
    except (AgeError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ServiceError(f"{path} holds no usable age identity ({type(exc).__name__})") from None
    access = archive.runtime.keys.access_recipient()
    return [i for i in identities if str(i.recipient) != access]


def open_identity(blob: str, identities: list[Identity]) -> dict[str, str] | str:
    """The identity an age file (base64) holds; `ServiceError` (without the contents) if these keys do not open it."""
    from archive.age import AgeError, decrypt_bytes

    try:
        data = decrypt_bytes(base64.b64decode(blob.encode("ascii"), validate=True), identities)
    except (AgeError, binascii.Error, ValueError):
        raise ServiceError("the identity given does not open this witness's identity (not a custodian's key "
                           "it was encrypted to)") from None
    document = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ServiceError(f"a witness's identity is not an {FORMAT} document")
    return document["identity"]  # type: ignore[no-any-return]
