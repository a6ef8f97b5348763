"""Items in the lists' order: an index on (created_at, id), so a page of items is read, not sorted out of all.

`list_items` and `search_records` page by keyset on (received time, id)
(`archive.services.items.keyset_after`); without this index every page of a
list of 100,000 items sorted the whole table first.

Revision ID: 0015i
Revises: 0014
"""

from alembic import op

revision = "0015i"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_created_at_id", "items", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_items_created_at_id", table_name="items")
