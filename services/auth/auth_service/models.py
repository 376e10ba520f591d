"""Tables of the ``auth`` schema."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from unpuzzle_common.events.outbox import inbox_table, outbox_table

SCHEMA = "auth"
metadata = MetaData(schema=SCHEMA)


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    # Stored lower-cased; uniqueness is on this column.
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("full_name", String(200), nullable=False),
    Column("bio", Text, nullable=False, server_default=""),
    Column("avatar_url", String(2048), nullable=True),
    Column("roles", ARRAY(String(32)), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: A session is one refresh-token family: one sign-in on one device.
sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "user_id", UUID(as_uuid=True), ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False
    ),
    _created_at(),
    Column("last_used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Column("user_agent", String(512), nullable=False, server_default=""),
    Column("ip_address", String(64), nullable=False, server_default=""),
    Index("ix_sessions_user", "user_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "session_id",
        UUID(as_uuid=True),
        ForeignKey(sessions.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    # sha256 of the opaque token: a leaked table does not leak usable tokens.
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("spent_at", DateTime(timezone=True), nullable=True),
    Index("ix_refresh_tokens_session", "session_id"),
)

password_resets = Table(
    "password_resets",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "user_id", UUID(as_uuid=True), ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False
    ),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    # PKCS#8 PEM encrypted with the service's key-encryption secret (Fernet).
    Column("private_key", LargeBinary, nullable=False),
    Column("public_jwk", JSONB, nullable=False),
    _created_at(),
    # Signs tokens from this moment (published in the JWKS before it).
    Column("active_from", DateTime(timezone=True), nullable=False),
    # Stops signing at this moment; stays in the JWKS until tokens it signed expired.
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
