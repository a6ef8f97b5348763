"""Accounts and API tokens: who may call the HTTP API, and as what role.

A person is a `users` row (a random id, the name sealed); an account gives
that id a role. A token is 256 random bits shown once; the catalog keeps only
its SHA-256, so a copy of the database cannot be used to call the API.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    user_id: str = Field(primary_key=True, max_length=18)
    role: str = Field(max_length=16)  # archive.roles.Role
    created_at: str = Field(max_length=32)
    disabled_at: str | None = Field(default=None, max_length=32)


class Token(SQLModel, table=True):
    __tablename__ = "tokens"

    id: str = Field(primary_key=True, max_length=24)  # tok- and 16 hex digits: names the token, proves nothing
    user_id: str = Field(index=True, max_length=18)
    digest: str = Field(unique=True, max_length=64)  # SHA-256 of the token, hex
    created_at: str = Field(max_length=32)
    expires_at: str | None = Field(default=None, max_length=32)
    revoked_at: str | None = Field(default=None, max_length=32)
