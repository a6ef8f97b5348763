"""The documentation model's tables: incidents, victims, sources, links, and their history.

What stays in clear is what statistics and lists need (types, dates, the
governorate, the party, the victim categories, certainty); everything that
names, places precisely or tells a story is sealed under the catalog key
(`sealed`, `key_version`; see `archive.records.state` for which field is
where). Rows are never deleted: an unlinked link, a withdrawn consent, a
merged victim stay, marked, and every change is kept in `record_changes`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class VocabTerm(SQLModel, table=True):
    """One entry of a vocabulary (parties, incident types, governorates, professions, weapons …): data, not code."""

    __tablename__ = "vocab_terms"
    __table_args__ = (UniqueConstraint("vocabulary", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    vocabulary: str = Field(max_length=32, index=True)
    key: str = Field(max_length=64)
    label: str = Field(max_length=255)
    group: str | None = Field(default=None, max_length=16)  # parties: main | other
    former_names: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Incident(SQLModel, table=True):
    """An attack, a killing, a death in detention: what items and victims are linked to."""

    __tablename__ = "incidents"

    id: str = Field(primary_key=True, max_length=24)  # inc-<16 hex>
    ref: str = Field(max_length=128, unique=True, index=True)
    type: str = Field(max_length=64, index=True)
    started_at: str = Field(max_length=16)  # local time at the place: YYYY-MM-DD or YYYY-MM-DDTHH:MM
    started_day: str = Field(max_length=10, index=True)
    started_precision: str = Field(max_length=8)  # day | hour | minute | about
    governorate: str = Field(max_length=64, index=True)
    controlled_by: str | None = Field(default=None, max_length=64)
    attribution: str = Field(max_length=255, index=True)  # party keys, sorted, joined by "+"
    weapon: str | None = Field(default=None, max_length=64)
    facility_damage: str | None = Field(default=None, max_length=16)  # slight | moderate | heavy | out_of_service
    # Sealed {"district", "place", "neighbourhood", "latitude", "longitude", "narrative"}.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)


class Attribution(SQLModel, table=True):
    """One attribution of an incident, in order; the incident's `attribution` is the latest."""

    __tablename__ = "attributions"

    id: str = Field(primary_key=True, max_length=24)  # att-<16 hex>
    incident_id: str = Field(foreign_key="incidents.id", index=True, max_length=24)
    parties: str = Field(max_length=255)  # sorted keys joined by "+"
    kind: str = Field(max_length=8)  # single | joint | other
    at: str = Field(max_length=32)
    by: str = Field(max_length=64)  # a user id
    # Sealed {"reason", "evidence"}: why, and on what (item ids, source refs, free text).
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)


class Victim(SQLModel, table=True):
    """One person killed (or a report of one): the clear columns are the monthly report's dimensions."""

    __tablename__ = "victims"

    id: str = Field(primary_key=True, max_length=24)  # vic-<16 hex>
    ref: str = Field(max_length=128, unique=True, index=True)
    incident_id: str = Field(foreign_key="incidents.id", index=True, max_length=24)
    anonymous: bool = False
    name_withheld: bool = False  # the family asked that the name be withheld
    sex: str = Field(max_length=8)  # male | female | unknown
    child: bool = False  # derived: age under 18, or age group child when the age is unknown
    woman: bool = False  # derived: female and not a child
    civilian: bool = True
    professions: str = Field(default="", max_length=255)  # ";key;key;" (so LIKE '%;medical;%' finds one)
    died_under_torture: bool = False
    governorate_of_death: str | None = Field(default=None, max_length=64, index=True)
    date_of_death: str | None = Field(default=None, max_length=10, index=True)
    date_documented: str = Field(max_length=10, index=True)
    status: str = Field(default="active", max_length=8)  # active | merged
    merged_into: str | None = Field(default=None, max_length=24)
    # Sealed {"name", "age", "age_group", "governorate_of_origin"}.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)
    name_lookup: str | None = Field(default=None, max_length=64, index=True)  # keyed hash of the normalized name
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)


class Consent(SQLModel, table=True):
    """The family's consent for one scope (un_bodies | courts | publication), as recorded; the latest row counts."""

    __tablename__ = "consents"

    id: str = Field(primary_key=True, max_length=24)  # con-<16 hex>
    victim_id: str = Field(foreign_key="victims.id", index=True, max_length=24)
    scope: str = Field(max_length=16)
    status: str = Field(max_length=16)  # yes | no | not_asked | withdrawn
    given_on: str | None = Field(default=None, max_length=10)
    at: str = Field(max_length=32)
    by: str = Field(max_length=64)  # the user id who entered it
    # Sealed {"recorded_by", "document", "note"}: who took it, and the document it rests on.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)


class Source(SQLModel, table=True):
    """Where evidence came from: a person (maybe under an alias) or a publication."""

    __tablename__ = "sources"

    id: str = Field(primary_key=True, max_length=24)  # src-<16 hex>
    ref: str = Field(max_length=128, unique=True, index=True)
    kind: str = Field(max_length=16, index=True)  # survivor | eyewitness | filmer | open_source | medical | official
    reliability: int  # the brief's rank, derived from the kind: 1 survivors … 5 official statements
    # Sealed {"alias", "url", "channel", "posted_at", "description", "identity"}; `identity` is itself an age
    # file to the custodian recipients only (base64): real name and contacts, readable by a custodian alone.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)


class Interview(SQLModel, table=True):
    """One interview of a source: informed consent and 'no payment offered or made' recorded each time."""

    __tablename__ = "interviews"

    id: str = Field(primary_key=True, max_length=24)  # itv-<16 hex>
    source_id: str = Field(foreign_key="sources.id", index=True, max_length=24)
    held_on: str = Field(max_length=10)
    informed_consent: bool
    no_payment: bool
    at: str = Field(max_length=32)
    by: str = Field(max_length=64)
    # Sealed {"interviewer", "notes"}.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)


class Link(SQLModel, table=True):
    """A relation between two records (or two items: same footage), with its certainty; unlinking marks it."""

    __tablename__ = "links"

    id: str = Field(primary_key=True, max_length=24)  # lnk-<16 hex>
    kind: str = Field(max_length=24, index=True)  # see archive.services.links.LINK_KINDS
    a_id: str = Field(max_length=36, index=True)
    b_id: str = Field(max_length=36, index=True)
    certainty: str = Field(max_length=10)  # confirmed | probable | possible
    active: bool = Field(default=True, index=True)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    removed_at: str | None = Field(default=None, max_length=32)
    removed_by: str | None = Field(default=None, max_length=64)
    # Sealed {"note"}: the relevance note.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)


class RecordChange(SQLModel, table=True):
    """One change of one record: its whole new state sealed, and the salted commitment the log holds.

    The history (before and after) is the sequence of a record's states; the
    journal every site keeps (`archive.records.journal`) is these rows.
    """

    __tablename__ = "record_changes"

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=36, index=True)
    record_kind: str = Field(max_length=16)  # incident | attribution | victim | consent | source | interview | link
    change: str = Field(max_length=16)  # create | edit | attribute | link | unlink | merge | consent | import …
    at: str = Field(max_length=32)
    by: str = Field(max_length=64)
    commitment: str = Field(max_length=64, unique=True)  # also what its sealed fields are bound to
    event_seq: int | None = Field(default=None, index=True)  # the custody event that carries it (or its batch root)
    batch_index: int | None = None  # its leaf in the Merkle tree of an imported file's commitments
    # Sealed {"state", "salt", "reason"}.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)


def row_fields(row: SQLModel) -> dict[str, Any]:
    """The clear columns of a row (without its sealed bytes) as plain data."""
    return {k: v for k, v in row.model_dump().items() if k not in ("sealed", "key_version", "name_lookup")}
