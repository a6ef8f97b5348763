"""What every documentation service needs: the catalog key, finding a record by ref or id, checked values."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import SQLModel, select

from archive.roles import Role, documents
from archive.services.errors import Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

Row = TypeVar("Row", bound=SQLModel)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
REF_MAX = 128
_ID = re.compile(r"^[a-z]{3}-[0-9a-f]{16}$")  # archive.records.changes.new_id


def record_keys(archive: Archive, purpose: str) -> CatalogKeys:
    """The catalog key (records are sealed under it), or `Locked` naming what needed it."""
    from archive.catalog.sealing import catalog_keys

    return catalog_keys(archive, purpose)


def require(role: Role, what: str) -> None:
    """`Forbidden` unless the role documents (custodians and investigators)."""
    if not documents(role):
        raise Forbidden(f"{what} needs the custodian or investigator role, not {role}")


def find(session: Session, model: type[Row], name: str, what: str, *, lock: bool = False) -> Row:
    """A record by `ref` (which wins) or by id; `NotFound` names what was asked for.

    `lock`: for a change built from the row's current state, hold the row
    (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already does) so
    two edits at once follow each other instead of one silently undoing the
    other.
    """
    name = name.strip()
    query = select(model)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    if "ref" in model.model_fields:
        row = session.exec(query.where(model.ref == name)).first()  # type: ignore[attr-defined]
        if row is not None:
            return row
    row = session.exec(query.where(model.id == name)).first()  # type: ignore[attr-defined]
    if row is None:
        raise NotFound(f"no {what} {name!r} (by ref or id)")
    return row


def check_ref(ref: Any, what: str) -> str:
    if not isinstance(ref, str) or not ref.strip():
        raise Invalid(f"{what}: a ref is required")
    ref = ref.strip()
    if len(ref) > REF_MAX or any(not c.isprintable() for c in ref):
        raise Invalid(f"{what}: ref {ref[:40]!r} must be one line of at most {REF_MAX} printable characters")
    if _ID.match(ref):
        raise Invalid(f"{what}: ref {ref!r} has the form of a record id; records are named by ref or id, so a "
                      "ref may not look like one")
    return ref


def check_day(value: Any, what: str) -> str:
    """A calendar date `YYYY-MM-DD` (a real one: no 2023-02-30)."""
    text = str(value).strip() if value is not None else ""
    if not _DAY.match(text):
        raise Invalid(f"{what}: {text!r} is not a date (YYYY-MM-DD)")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{what}: {text!r} is not a real date") from None
    return text


def check_started(value: Any, what: str = "started_at") -> tuple[str, bool]:
    """(local start time, whether it has a time of day): `2023-12-09` or `2023-12-09T14:30`."""
    text = str(value).strip() if value is not None else ""
    if _MINUTE.match(text):
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise Invalid(f"{what}: {text!r} is not a real date and time") from None
        return text, True
    return check_day(text, what), False


def check_choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise Invalid(f"{what}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def check_text(value: Any, what: str, limit: int = 20000) -> str | None:
    """Free text (a narrative, a note): None when empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{what}: must be text")
    value = value.strip()
    if len(value) > limit:
        raise Invalid(f"{what}: longer than {limit} characters")
    return value or None


def check_coordinate(value: Any, what: str, bound: float) -> str | None:
    """A latitude or longitude as decimal text (kept as text: a commitment's bytes have no floats)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{what}: {value!r} is not a number") from None
    if not -bound <= number <= bound:
        raise Invalid(f"{what}: {value!r} is outside ±{bound}")
    return format(number, ".6f").rstrip("0").rstrip(".")
