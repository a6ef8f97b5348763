"""The web interface's tables: sign-in credentials, browser sessions, and encrypted previews.

A credential belongs to an account (`archive.catalog.accounts`): an Argon2id
hash of the password (a hash, so a seized catalog cannot sign anyone in), and
the TOTP secret sealed under the catalog key (the second factor must not be
readable from a copy of the database either). A session is known only by the
SHA-256 of its cookie. A preview is a thumbnail or poster frame stripped of all
metadata and encrypted with age to the archive's *preview* identity, which is
held apart from the access identity that opens originals.
"""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from archive.catalog import sealing

CREDENTIALS_TABLE = "web_credentials"
SESSIONS_TABLE = "web_sessions"
PREVIEWS_TABLE = "previews"


class Credential(SQLModel, table=True):
    """How one account signs in to the web pages (accounts without a row sign in with a token only)."""

    __tablename__ = CREDENTIALS_TABLE

    user_id: str = Field(primary_key=True, max_length=18)
    password_hash: str | None = Field(default=None, max_length=256)  # Argon2id, PHC string
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # {"totp": base32 secret}
    key_version: int = Field(default=0, index=True)
    totp_last_counter: int | None = Field(default=None)  # a code is accepted once
    enrolled_at: str | None = Field(default=None, max_length=32)
    setup_digest: str | None = Field(default=None, max_length=64)  # SHA-256 of a one-time setup code
    setup_expires_at: str | None = Field(default=None, max_length=32)
    failures: int = Field(default=0)
    locked_until: str | None = Field(default=None, max_length=32)
    updated_at: str = Field(max_length=32)


sealing.register(sealing.SealedTable(CREDENTIALS_TABLE, "user_id"))  # key rotation re-seals TOTP secrets


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie is shown once, only its SHA-256 is kept."""

    __tablename__ = SESSIONS_TABLE

    id: str = Field(primary_key=True, max_length=24)  # ses-<16 hex>: names the session, proves nothing
    digest: str = Field(unique=True, max_length=64)
    user_id: str = Field(index=True, max_length=18)
    csrf: str = Field(max_length=64)
    method: str = Field(max_length=16)  # password+totp | token
    created_at: str = Field(max_length=32)
    seen_at: str = Field(max_length=32)
    expires_at: str = Field(max_length=32)  # absolute expiry
    ended_at: str | None = Field(default=None, max_length=32)


class Preview(SQLModel, table=True):
    """One item's thumbnail (photo) or poster frame (video), age-encrypted to the preview recipient."""

    __tablename__ = PREVIEWS_TABLE

    item_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # thumbnail | poster
    media_type: str = Field(max_length=32)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # age ciphertext of the image
    width: int
    height: int
    created_at: str = Field(max_length=32)
