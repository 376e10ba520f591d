"""Resumable uploads: opening a session, receiving chunks, looking at it, aborting it.

An upload session is one multipart upload in the object store; chunk ``n`` (from 0)
is part ``n + 1``. Every chunk is exactly ``chunk_size`` bytes except the last, which is
the remainder of the declared ``file_size``, so a size lie shows on the first wrong
chunk. Chunks are held in memory one at a time and never the whole file.

Completing is :mod:`media_service.completion`; expiry is :mod:`media_service.upload_expiry`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.content_types import FilenameError, allowed_type, clean_filename, extension_of
from media_service.models import (
    ABORTED,
    COMPLETED,
    EXPIRED,
    OPEN,
    REJECTED,
    upload_chunks,
    upload_sessions,
)
from media_service.settings import S3_MAX_PARTS, Settings
from media_service.storage import NoSuchUpload, ObjectStore
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import Conflict, NotFound, Problem, ValidationFailed

log = logging.getLogger(__name__)

#: Where every object of this service lives in the bucket.
KEY_PREFIX = "media/"


class UploadGone(Problem):
    """The upload was aborted, expired or refused: its chunks are gone, start a new one."""

    status, slug = 410, "upload-gone"


@dataclass(frozen=True)
class Checksums:
    """Digests a client sent with a chunk (raw bytes), each optional."""

    md5: bytes | None = None
    sha256: bytes | None = None


def media_key(media_id: uuid.UUID, filename: str) -> str:
    """Object key of an original file (of the declared name only its checked extension)."""
    return f"{KEY_PREFIX}{media_id}/original{extension_of(filename)}"


def thumbnail_key(media_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{media_id}/thumbnail.jpg"


def chunk_layout(file_size: int, chunk_size: int) -> tuple[int, int]:
    """(chunk size, number of chunks) for a file; the chunk grows if S3's part limit needs it."""
    size = max(chunk_size, -(-file_size // S3_MAX_PARTS))
    return size, max(1, -(-file_size // size))


def expected_chunk_size(file_size: int, chunk_size: int, total: int, number: int) -> int:
    """Exact size chunk ``number`` must have."""
    return chunk_size if number < total - 1 else file_size - chunk_size * (total - 1)


def _now() -> datetime:
    return datetime.now(UTC)


# -- starting --------------------------------------------------------------------------


async def create_upload(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    settings: Settings,
    owner: Principal,
    *,
    filename: str,
    file_size: int,
    content_type: str,
) -> Row[Any]:
    """Validate what the file claims to be and open a multipart upload for it."""
    allowed = allowed_type(content_type)
    errors: list[dict[str, str]] = []
    name = filename
    if allowed is None:
        errors.append(
            {"field": "content_type", "message": "not an accepted type (video, audio, image, pdf)"}
        )
    else:
        try:
            name = clean_filename(filename, allowed)
        except FilenameError as exc:
            errors.append({"field": "filename", "message": str(exc)})
        limit = settings.max_bytes_for(allowed.kind)
        if file_size > limit:
            errors.append(
                {"field": "file_size", "message": f"at most {limit} bytes for {allowed.kind}"}
            )
    if errors or allowed is None:
        raise ValidationFailed(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
        )

    chunk_size, total = chunk_layout(file_size, settings.chunk_size)
    media_id = uuid.uuid4()
    key = media_key(media_id, name)
    multipart_id = await store.start_multipart(key, allowed.content_type)
    try:
        async with transaction(sessions) as session:
            row = (
                await session.execute(
                    insert(upload_sessions)
                    .values(
                        id=uuid.uuid4(),
                        owner_id=owner.user_id,
                        filename=name,
                        content_type=allowed.content_type,
                        kind=allowed.kind,
                        file_size=file_size,
                        chunk_size=chunk_size,
                        total_chunks=total,
                        media_id=media_id,
                        storage_key=key,
                        multipart_id=multipart_id,
                        status=OPEN,
                        expires_at=_now() + timedelta(seconds=settings.upload_ttl),
                    )
                    .returning(upload_sessions)
                )
            ).one()
    except BaseException:
        await store.abort_multipart(key, multipart_id)
        raise
    log.info("upload %s opened: %s bytes in %s chunks", row.id, file_size, total)
    return row


# -- reading ---------------------------------------------------------------------------


def visible_upload(row: Row[Any] | None, principal: Principal) -> Row[Any]:
    if row is None or (row.owner_id != principal.user_id and not principal.is_admin):
        raise NotFound("No such upload.")
    return row


async def get_upload(
    session: AsyncSession, principal: Principal, upload_id: uuid.UUID
) -> tuple[Row[Any], list[int]]:
    """The session and the numbers of the chunks received (404 unless the caller's)."""
    row = (
        await session.execute(select(upload_sessions).where(upload_sessions.c.id == upload_id))
    ).one_or_none()
    row = visible_upload(row, principal)
    return row, await received_chunks(session, upload_id)


async def received_chunks(session: AsyncSession, upload_id: uuid.UUID) -> list[int]:
    numbers = await session.scalars(
        select(upload_chunks.c.number)
        .where(upload_chunks.c.upload_id == upload_id)
        .order_by(upload_chunks.c.number)
    )
    return list(numbers)


def effective_status(row: Row[Any], now: datetime | None = None) -> str:
    """The status, counting an open session past its deadline as expired."""
    if row.status == OPEN and row.expires_at <= (now or _now()):
        return EXPIRED
    return row.status


def require_open(row: Row[Any]) -> None:
    status = effective_status(row)
    if status in (ABORTED, EXPIRED):
        raise UploadGone(f"This upload was {status}; start a new one.")
    if status == REJECTED:
        raise UploadGone("This upload was refused: its content did not match its type.")
    if status == COMPLETED:
        raise Conflict("This upload is already completed.")


# -- chunks ----------------------------------------------------------------------------


def parse_checksums(headers: Mapping[str, str]) -> Checksums:
    """``Content-MD5`` (base64, RFC 1864) and ``X-Checksum-SHA256`` (hex or base64)."""
    md5 = sha256 = None
    if (value := headers.get("content-md5")) is not None:
        md5 = _digest(value, 16, allow_hex=False)
        if md5 is None:
            raise ValidationFailed.field("Content-MD5", "must be the base64 of an MD5 digest")
    if (value := headers.get("x-checksum-sha256")) is not None:
        sha256 = _digest(value, 32, allow_hex=True)
        if sha256 is None:
            raise ValidationFailed.field(
                "X-Checksum-SHA256", "must be a SHA-256 digest in hex or base64"
            )
    return Checksums(md5=md5, sha256=sha256)


def _digest(value: str, size: int, *, allow_hex: bool) -> bytes | None:
    value = value.strip()
    if allow_hex and len(value) == size * 2:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


async def read_exactly(body: AsyncIterator[bytes], size: int) -> bytes:
    """The whole body if it is exactly ``size`` bytes; reading stops as soon as it is longer."""
    pieces: list[bytes] = []
    received = 0
    async for piece in body:
        pieces.append(piece)
        received += len(piece)
        if received > size:
            raise _wrong_size(size, f"more than {size}")
    if received != size:
        raise _wrong_size(size, str(received))
    return b"".join(pieces)


def _digests(data: bytes) -> tuple[bytes, bytes]:
    return hashlib.md5(data, usedforsecurity=False).digest(), hashlib.sha256(data).digest()


def _wrong_size(expected: int, got: str) -> ValidationFailed:
    return ValidationFailed(
        f"This chunk must be exactly {expected} bytes; got {got}.",
        errors=[{"field": "body", "message": f"chunk must be exactly {expected} bytes"}],
        extra={"expected_size": expected},
    )


async def receive_chunk(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    settings: Settings,
    principal: Principal,
    upload_id: uuid.UUID,
    number: int,
    body: AsyncIterator[bytes],
    *,
    declared_length: int | None,
    checksums: Checksums,
) -> tuple[Row[Any], Row[Any], int]:
    """Store chunk ``number``; a repeated chunk replaces the earlier one.

    Returns (session, chunk row, chunks received so far).
    """
    async with sessions() as session:
        row = (
            await session.execute(select(upload_sessions).where(upload_sessions.c.id == upload_id))
        ).one_or_none()
    row = visible_upload(row, principal)
    require_open(row)
    if not 0 <= number < row.total_chunks:
        raise ValidationFailed.field(
            "n", f"chunk number must be between 0 and {row.total_chunks - 1}"
        )
    size = expected_chunk_size(row.file_size, row.chunk_size, row.total_chunks, number)
    if declared_length is not None and declared_length != size:
        raise _wrong_size(size, str(declared_length))
    data = await read_exactly(body, size)

    # Hashing megabytes takes milliseconds of CPU: off the event loop (hashlib frees the GIL).
    md5, sha256 = await asyncio.to_thread(_digests, data)
    if checksums.md5 is not None and checksums.md5 != md5:
        raise ValidationFailed.field("Content-MD5", "does not match the chunk received")
    if checksums.sha256 is not None and checksums.sha256 != sha256:
        raise ValidationFailed.field("X-Checksum-SHA256", "does not match the chunk received")

    try:
        etag = await store.upload_part(
            row.storage_key, row.multipart_id, number + 1, data, base64.b64encode(md5).decode()
        )
    except NoSuchUpload:
        raise UploadGone("This upload no longer exists in storage; start a new one.") from None
    del data

    async with transaction(sessions) as session:
        # The lock orders this chunk against a concurrent complete or abort.
        row = (
            await session.execute(
                select(upload_sessions).where(upload_sessions.c.id == upload_id).with_for_update()
            )
        ).one()
        require_open(row)
        values = {
            "size": size,
            "md5": md5.hex(),
            "sha256": sha256.hex(),
            "etag": etag,
            "received_at": func.now(),
        }
        stmt = pg_insert(upload_chunks).values(upload_id=upload_id, number=number, **values)
        chunk = (
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[upload_chunks.c.upload_id, upload_chunks.c.number],
                    set_=values,
                ).returning(upload_chunks)
            )
        ).one()
        row = (
            await session.execute(
                update(upload_sessions)
                .where(upload_sessions.c.id == upload_id)
                .values(
                    expires_at=_now() + timedelta(seconds=settings.upload_ttl),
                    updated_at=func.now(),
                )
                .returning(upload_sessions)
            )
        ).one()
        count = await session.scalar(
            select(func.count()).where(upload_chunks.c.upload_id == upload_id)
        )
    return row, chunk, int(count or 0)


# -- aborting --------------------------------------------------------------------------


async def abort_upload(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    principal: Principal,
    upload_id: uuid.UUID,
) -> None:
    """Abort an upload and drop its parts. Aborting again is a no-op; a completed one is 409."""
    async with transaction(sessions) as session:
        row = (
            await session.execute(
                select(upload_sessions).where(upload_sessions.c.id == upload_id).with_for_update()
            )
        ).one_or_none()
        row = visible_upload(row, principal)
        if row.status == COMPLETED:
            raise Conflict("This upload is completed; delete the media file instead.")
        if row.status != OPEN:
            return
        await store.abort_multipart(row.storage_key, row.multipart_id)
        await close_session(session, upload_id, ABORTED)


async def close_session(session: AsyncSession, upload_id: uuid.UUID, status: str) -> None:
    await session.execute(
        update(upload_sessions)
        .where(upload_sessions.c.id == upload_id)
        .values(status=status, updated_at=func.now())
    )
    await session.execute(delete(upload_chunks).where(upload_chunks.c.upload_id == upload_id))
