"""Media files: the caller's library, one file with its signed URL, deletion."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Response, status

from media_service import library
from media_service.api.deps import MediaContext, media_context
from media_service.schemas import MediaFile, MediaFileDetail
from unpuzzle_common.auth import Principal, current_principal
from unpuzzle_common.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/media", tags=["media"])


@router.get("", response_model=Page[MediaFile])
async def list_media(
    principal: Principal = Depends(current_principal),
    params: PageParams = Depends(page_params),
    ctx: MediaContext = Depends(media_context),
) -> dict[str, Any]:
    """The caller's media files, newest first."""
    async with ctx.sessions() as session:
        page = await library.list_own_media(session, principal.user_id, params)
    return {
        "items": [library.describe(row, ctx.signer) for row in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get("/{media_id}", response_model=MediaFileDetail)
async def get_media(
    media_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: MediaContext = Depends(media_context),
) -> dict[str, Any]:
    """One media file with a signed, expiring URL: for its owner, admins, and students
    enrolled in a course whose lesson uses it. 404 for anyone else."""
    async with ctx.sessions() as session:
        media = await library.visible_media(session, principal, media_id)
    return library.describe(media, ctx.signer, with_transcript=True)


@router.delete("/{media_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_media(
    media_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: MediaContext = Depends(media_context),
) -> Response:
    """Delete the file and its stored objects (owner or admin)."""
    await library.delete_media(ctx.sessions, ctx.store, principal, media_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
