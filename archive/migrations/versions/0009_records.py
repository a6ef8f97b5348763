"""The documentation model: vocabularies, incidents, attributions, victims, consents, sources, interviews,
links and the history of record changes; provenance gains its channel and source record.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _sealed() -> list[sa.Column]:
    return [sa.Column("sealed", sa.LargeBinary), sa.Column("key_version", sa.Integer, nullable=False, index=True)]


def upgrade() -> None:
    op.create_table(
        "vocab_terms",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("vocabulary", sa.String(32), nullable=False, index=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("group", sa.String(16)),
        sa.Column("former_names", sa.JSON, nullable=False),
        sa.UniqueConstraint("vocabulary", "key"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("ref", sa.String(128), nullable=False, unique=True, index=True),
        sa.Column("type", sa.String(64), nullable=False, index=True),
        sa.Column("started_at", sa.String(16), nullable=False),
        sa.Column("started_day", sa.String(10), nullable=False, index=True),
        sa.Column("started_precision", sa.String(8), nullable=False),
        sa.Column("governorate", sa.String(64), nullable=False, index=True),
        sa.Column("controlled_by", sa.String(64)),
        sa.Column("attribution", sa.String(255), nullable=False, index=True),
        sa.Column("weapon", sa.String(64)),
        sa.Column("facility_damage", sa.String(16)),
        *_sealed(),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "attributions",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("incident_id", sa.String(24), sa.ForeignKey("incidents.id"), nullable=False, index=True),
        sa.Column("parties", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        *_sealed(),
    )
    op.create_table(
        "victims",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("ref", sa.String(128), nullable=False, unique=True, index=True),
        sa.Column("incident_id", sa.String(24), sa.ForeignKey("incidents.id"), nullable=False, index=True),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("name_withheld", sa.Boolean, nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("child", sa.Boolean, nullable=False),
        sa.Column("woman", sa.Boolean, nullable=False),
        sa.Column("civilian", sa.Boolean, nullable=False),
        sa.Column("professions", sa.String(255), nullable=False),
        sa.Column("died_under_torture", sa.Boolean, nullable=False),
        sa.Column("governorate_of_death", sa.String(64), index=True),
        sa.Column("date_of_death", sa.String(10), index=True),
        sa.Column("date_documented", sa.String(10), nullable=False, index=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("merged_into", sa.String(24)),
        *_sealed(),
        sa.Column("name_lookup", sa.String(64), index=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("victim_id", sa.String(24), sa.ForeignKey("victims.id"), nullable=False, index=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("given_on", sa.String(10)),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        *_sealed(),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("ref", sa.String(128), nullable=False, unique=True, index=True),
        sa.Column("kind", sa.String(16), nullable=False, index=True),
        sa.Column("reliability", sa.Integer, nullable=False),
        *_sealed(),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "interviews",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("source_id", sa.String(24), sa.ForeignKey("sources.id"), nullable=False, index=True),
        sa.Column("held_on", sa.String(10), nullable=False),
        sa.Column("informed_consent", sa.Boolean, nullable=False),
        sa.Column("no_payment", sa.Boolean, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        *_sealed(),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False, index=True),
        sa.Column("a_id", sa.String(36), nullable=False, index=True),
        sa.Column("b_id", sa.String(36), nullable=False, index=True),
        sa.Column("certainty", sa.String(10), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, index=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("removed_at", sa.String(32)),
        sa.Column("removed_by", sa.String(64)),
        *_sealed(),
    )
    op.create_table(
        "record_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("record_id", sa.String(36), nullable=False, index=True),
        sa.Column("record_kind", sa.String(16), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False, unique=True),
        sa.Column("event_seq", sa.Integer, index=True),
        sa.Column("batch_index", sa.Integer),
        *_sealed(),
    )
    op.add_column("provenance", sa.Column("channel", sa.String(24)))
    op.add_column("provenance", sa.Column("source_id", sa.String(24)))
    op.create_index("ix_provenance_source_id", "provenance", ["source_id"])
