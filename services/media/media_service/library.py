"""The media library: finding, listing, describing and deleting media files."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.access import can_manage, can_view
from media_service.delivery import UrlSigner
from media_service.models import media_files
from media_service.storage import ObjectStore
from media_service.uploads import thumbnail_key
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import Forbidden, NotFound, ValidationFailed
from unpuzzle_common.pagination import Page, PageParams, make_page

log = logging.getLogger(__name__)

_NOT_FOUND = "No such media file."


async def visible_media(
    session: AsyncSession, principal: Principal, media_id: uuid.UUID
) -> Row[Any]:
    """The media file if ``principal`` may see it; 404 otherwise (never revealing it exists)."""
    media = (
        await session.execute(select(media_files).where(media_files.c.id == media_id))
    ).one_or_none()
    if media is None or not await can_view(session, principal, media):
        raise NotFound(_NOT_FOUND)
    return media


async def list_own_media(
    session: AsyncSession, owner_id: uuid.UUID, params: PageParams
) -> Page[Row[Any]]:
    """The owner's media files, newest first."""
    query = select(media_files).where(media_files.c.owner_id == owner_id)
    if params.after is not None:
        try:
            created = datetime.fromisoformat(str(params.after["created_at"]))
            last_id = uuid.UUID(str(params.after["id"]))
        except (KeyError, ValueError) as exc:
            raise ValidationFailed.field("cursor", "not a valid cursor") from exc
        query = query.where(
            or_(
                media_files.c.created_at < created,
                and_(media_files.c.created_at == created, media_files.c.id < last_id),
            )
        )
    rows = (
        await session.execute(
            query.order_by(media_files.c.created_at.desc(), media_files.c.id.desc()).limit(
                params.limit + 1
            )
        )
    ).all()
    return make_page(
        rows, params, lambda r: {"created_at": r.created_at.isoformat(), "id": str(r.id)}
    )


async def delete_media(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    principal: Principal,
    media_id: uuid.UUID,
) -> None:
    """Delete a media file and its objects (owner or admin).

    The objects are deleted while the row is locked and before it is removed: if the
    store fails nothing changes and the caller may retry (deleting a missing object
    succeeds), so no row ever outlives its objects unnoticed.
    """
    async with transaction(sessions) as session:
        media = (
            await session.execute(
                select(media_files).where(media_files.c.id == media_id).with_for_update()
            )
        ).one_or_none()
        if media is None or not await can_view(session, principal, media):
            raise NotFound(_NOT_FOUND)
        if not can_manage(principal, media):
            raise Forbidden("Only the owner or an admin may delete this media file.")
        # The thumbnail's key is fixed: delete it even if processing never recorded it.
        await store.delete(media.storage_key, thumbnail_key(media.id))
        await session.execute(delete(media_files).where(media_files.c.id == media_id))
    log.info("media %s deleted", media_id)


def describe(
    media: Row[Any], signer: UrlSigner, *, with_transcript: bool = False
) -> dict[str, Any]:
    """The API's view of a media file, with fresh signed URLs."""
    original = signer.sign(
        media.storage_key, filename=media.filename, content_type=media.content_type
    )
    thumbnail = (
        signer.sign(media.thumbnail_key, content_type="image/jpeg").url
        if media.thumbnail_key
        else None
    )
    view: dict[str, Any] = {
        "id": media.id,
        "owner_id": media.owner_id,
        "filename": media.filename,
        "content_type": media.content_type,
        "kind": media.kind,
        "size": media.size,
        "processing_status": media.processing_status,
        "processing_error": media.processing_error,
        "metadata": media.metadata,
        "duration": media.duration,
        "url": original.url,
        "url_expires_at": original.expires_at,
        "thumbnail_url": thumbnail,
        "has_transcript": media.transcript is not None,
        "created_at": media.created_at,
        "processed_at": media.processed_at,
    }
    if with_transcript:
        view["transcript"] = media.transcript
    return view
