"""Alembic environment: runs on the connection the application hands it."""

from alembic import context
from sqlmodel import SQLModel

import archive.catalog  # noqa: F401 - registers every table on SQLModel.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    from archive.config import database_url_from_env
    from archive.db import make_engine

    connection = make_engine(database_url_from_env()).connect()

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
