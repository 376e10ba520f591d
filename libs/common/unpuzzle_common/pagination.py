"""Keyset pagination with opaque cursors.

A cursor is the sort key of the last item of a page, JSON-encoded and base64url'd.
Clients treat it as opaque; a cursor that does not decode is a 422 on ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from unpuzzle_common.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    """One page of a collection."""

    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    """Where a page starts and how long it is."""

    limit: int = DEFAULT_LIMIT
    after: dict[str, Any] | None = None


def encode_cursor(key: dict[str, Any]) -> str:
    """Opaque cursor for the sort key ``key`` (values must be JSON-serialisable)."""
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The sort key inside a cursor; 422 when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed.field("cursor", "not a valid cursor") from exc
    if not isinstance(value, dict):
        raise ValidationFailed.field("cursor", "not a valid cursor")
    return value


async def page_params(
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page (1-100)."),
    cursor: str | None = Query(None, max_length=512, description="Opaque cursor from next_cursor."),
) -> PageParams:
    """FastAPI dependency reading ``?limit=&cursor=``."""
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


def make_page(rows: list[T], params: PageParams, key_of: Any) -> Page[T]:
    """Build a page from up to ``limit + 1`` fetched rows (the extra one means 'more')."""
    has_more = len(rows) > params.limit
    items = rows[: params.limit]
    next_cursor = encode_cursor(key_of(items[-1])) if has_more and items else None
    return Page[T](items=items, next_cursor=next_cursor)
