"""Sealed items, provenance and users: the catalog keeps no hash, exact size or name in clear.

A migration cannot see the catalog key, so it only reshapes: `items` gains
`sealed`, `key_version`, `lookup` (keyed hash of the SHA-256) and a clear
`size_bucket`; `provenance` gains `sealed` and `key_version`; `users` is new;
`replicas.size` goes (an exact ciphertext size identifies a known file).
The plaintext of rows that already exist is moved, untouched, into
`legacy_items` and `legacy_provenance`, which `archive.services.legacy` seals
at the first unlocked open and then drops (vacuuming the file, so no old
plaintext survives in free pages). An empty catalog gets no legacy tables.

Plain `ALTER TABLE … DROP COLUMN` (SQLite ≥ 3.35 and PostgreSQL alike): a
table rebuild would have to drop `items` under live foreign keys.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _bucket(size: int) -> str:
    """The power-of-two class of a size (as `archive.catalog.secrets.size_bucket`, frozen here)."""
    if size <= 0:
        return "0 B"
    low = 1 << (size.bit_length() - 1)

    def unit(n: int) -> tuple[int, str]:
        i = 0
        while n >= 1024 and i < len(_UNITS) - 1 and n % 1024 == 0:
            n //= 1024
            i += 1
        return n, _UNITS[i]

    (a, ua), (b, ub) = unit(low), unit(low * 2)
    return f"{a}-{b} {ua}" if ua == ub else f"{a} {ua}-{b} {ub}"


def upgrade() -> None:
    bind = op.get_bind()
    held = bind.execute(sa.text("SELECT count(*) FROM items")).scalar_one() > 0
    provenance_held = bind.execute(sa.text("SELECT count(*) FROM provenance")).scalar_one() > 0

    op.create_table(
        "users",
        sa.Column("id", sa.String(18), primary_key=True),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("lookup", sa.String(64)),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_users_key_version", "users", ["key_version"])
    op.create_index("ix_users_lookup", "users", ["lookup"])

    op.add_column("items", sa.Column("sealed", sa.LargeBinary))
    op.add_column("items", sa.Column("key_version", sa.Integer))
    op.add_column("items", sa.Column("lookup", sa.String(64)))
    op.add_column("items", sa.Column("size_bucket", sa.String(32)))
    op.create_index("ix_items_key_version", "items", ["key_version"])
    op.create_index("ix_items_lookup", "items", ["lookup"], unique=True)
    if held:
        op.create_table(
            "legacy_items",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
        )
        bind.execute(sa.text("INSERT INTO legacy_items (id, sha256, size) SELECT id, sha256, size FROM items"))
        rows = bind.execute(sa.text("SELECT id, size FROM items")).all()
        for item_id, size in rows:
            bind.execute(sa.text("UPDATE items SET size_bucket = :b WHERE id = :i"),
                         {"b": _bucket(int(size)), "i": item_id})
    op.drop_index("ix_items_sha256", table_name="items")
    op.execute("ALTER TABLE items DROP COLUMN sha256")
    op.execute("ALTER TABLE items DROP COLUMN size")

    op.add_column("provenance", sa.Column("sealed", sa.LargeBinary))
    op.add_column("provenance", sa.Column("key_version", sa.Integer))
    op.create_index("ix_provenance_key_version", "provenance", ["key_version"])
    if provenance_held:
        op.create_table(
            "legacy_provenance",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("source", sa.Text),
            sa.Column("note", sa.Text),
            sa.Column("original_name", sa.Text),
            sa.Column("declared_type", sa.String(255)),
        )
        bind.execute(sa.text(
            "INSERT INTO legacy_provenance (id, source, note, original_name, declared_type) "
            "SELECT id, source, note, original_name, declared_type FROM provenance"
        ))
    for column in ("source", "note", "original_name", "declared_type"):
        op.execute(f"ALTER TABLE provenance DROP COLUMN {column}")

    op.execute("ALTER TABLE replicas DROP COLUMN size")


def downgrade() -> None:
    raise NotImplementedError("sealed rows cannot be unsealed by a migration (it holds no key)")
