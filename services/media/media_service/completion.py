"""Completing an upload: assemble the parts, check the bytes are what they claim, create
the media file and write ``media.uploaded.v1`` in the same transaction.

The store's list of parts is the truth (two clients racing on one chunk cannot leave a
stale ETag behind). The first bytes are sniffed (:mod:`media_service.sniffing`): a file
whose bytes are not its declared type -- an executable named ``.mp4`` -- is deleted and
the session is ``rejected``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.content_types import allowed_type
from media_service.models import COMPLETED, PENDING, REJECTED, media_files, outbox, upload_sessions
from media_service.sniffing import EXECUTABLE, SNIFF_BYTES, sniff
from media_service.storage import NoSuchKey, NoSuchUpload, ObjectStore, StoredPart
from media_service.uploads import (
    UploadGone,
    expected_chunk_size,
    received_chunks,
    require_open,
    visible_upload,
)
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import NotFound, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import MediaUploaded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    """What completing an upload produced: the media file, or why the file was refused."""

    media: Row[Any] | None
    refusal: str | None = None


async def complete_upload(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    principal: Principal,
    upload_id: uuid.UUID,
) -> Row[Any]:
    """Assemble the chunks into the media file; idempotent once completed.

    Raises 422 when chunks are missing or when the bytes are not the declared type
    (the object is then deleted and the session is ``rejected``).
    """
    completion = await _complete(sessions, store, principal, upload_id)
    if completion.refusal is not None:
        raise ValidationFailed(
            completion.refusal,
            errors=[{"field": "content_type", "message": completion.refusal}],
        )
    assert completion.media is not None
    return completion.media


async def _complete(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    principal: Principal,
    upload_id: uuid.UUID,
) -> Completion:
    # The session row stays locked while the store assembles the object, so a second
    # complete waits and then finds the upload completed (and answers the same file).
    async with transaction(sessions) as session:
        row = (
            await session.execute(
                select(upload_sessions).where(upload_sessions.c.id == upload_id).with_for_update()
            )
        ).one_or_none()
        row = visible_upload(row, principal)
        if row.status == COMPLETED:
            media = (
                await session.execute(select(media_files).where(media_files.c.id == row.media_id))
            ).one_or_none()
            if media is None:
                raise NotFound("The media file of this upload was deleted.")
            return Completion(media)
        require_open(row)

        received = await received_chunks(session, upload_id)
        missing = sorted(set(range(row.total_chunks)) - set(received))
        if missing:
            raise _missing_chunks(missing)
        parts = await _stored_parts(store, row)
        await _assemble(store, row, parts)

        head = await store.read_range(row.storage_key, 0, SNIFF_BYTES)
        refusal = _refusal(sniff(head), row.content_type)
        if refusal is not None:
            await store.delete(row.storage_key)
            await session.execute(
                update(upload_sessions)
                .where(upload_sessions.c.id == upload_id)
                .values(status=REJECTED, status_reason=refusal, updated_at=func.now())
            )
            log.warning("upload %s refused and deleted: %s", upload_id, refusal)
            return Completion(None, refusal=refusal)

        media = (
            await session.execute(
                insert(media_files)
                .values(
                    id=row.media_id,
                    owner_id=row.owner_id,
                    upload_id=row.id,
                    filename=row.filename,
                    content_type=row.content_type,
                    kind=row.kind,
                    size=row.file_size,
                    storage_key=row.storage_key,
                    processing_status=PENDING,
                )
                .returning(media_files)
            )
        ).one()
        await session.execute(
            update(upload_sessions)
            .where(upload_sessions.c.id == upload_id)
            .values(status=COMPLETED, updated_at=func.now())
        )
        await add_event(
            session,
            outbox,
            MediaUploaded(
                media_id=media.id, owner_id=media.owner_id, content_type=media.content_type
            ),
            source="media",
        )
    log.info("upload %s completed as media %s", upload_id, media.id)
    return Completion(media)


def _missing_chunks(missing: list[int]) -> ValidationFailed:
    shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
    return ValidationFailed(
        f"Chunks are missing: {shown}.",
        errors=[{"field": "chunks", "message": f"missing chunks: {shown}"}],
        extra={"missing_chunks": missing[:1000]},
    )


async def _stored_parts(store: ObjectStore, row: Row[Any]) -> list[StoredPart]:
    """The store's parts, checked against the layout (1..total, each of its exact size)."""
    try:
        parts = {p.number: p for p in await store.list_parts(row.storage_key, row.multipart_id)}
    except NoSuchUpload:
        return []  # already assembled by an attempt whose commit failed: see _assemble
    missing = []
    for number in range(row.total_chunks):
        part = parts.get(number + 1)
        expected = expected_chunk_size(row.file_size, row.chunk_size, row.total_chunks, number)
        if part is None or part.size != expected:
            missing.append(number)
    if missing:
        raise _missing_chunks(missing)
    return [parts[n + 1] for n in range(row.total_chunks)]


async def _assemble(store: ObjectStore, row: Row[Any], parts: list[StoredPart]) -> None:
    if parts:
        try:
            await store.complete_multipart(row.storage_key, row.multipart_id, parts)
            return
        except NoSuchUpload:
            pass
    # The multipart upload is gone: either an earlier complete assembled it and then
    # failed to commit (the object exists: go on), or it was aborted behind our back.
    try:
        await store.read_range(row.storage_key, 0, 1)
    except NoSuchKey as exc:
        raise UploadGone("This upload no longer exists in storage; start a new one.") from exc


def _refusal(detected: str, content_type: str) -> str | None:
    """Why bytes of format ``detected`` cannot be a ``content_type`` file (None: they can)."""
    allowed = allowed_type(content_type)
    if detected == EXECUTABLE:
        return f"the file is an executable, not {content_type}"
    if allowed is None or detected not in allowed.formats:
        return f"the file's content ({detected}) does not match its type {content_type}"
    return None
