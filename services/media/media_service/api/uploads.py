"""Resumable uploads: open, send chunks, look, complete, abort."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response, status

from media_service import completion, uploads
from media_service.api.deps import MediaContext, media_context
from media_service.library import describe
from media_service.models import COMPLETED
from media_service.schemas import ChunkReceipt, MediaFileDetail, UploadCreate, UploadSession
from unpuzzle_common.auth import ADMIN, INSTRUCTOR, Principal, current_principal, require_roles
from unpuzzle_common.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/media/uploads", tags=["uploads"])

_CHUNK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The chunk's raw bytes: exactly chunk_size, the last one the remainder.",
    }
}


def _session_view(row: Any, received: list[int]) -> UploadSession:
    return UploadSession(
        upload_id=row.id,
        filename=row.filename,
        content_type=row.content_type,
        kind=row.kind,
        file_size=row.file_size,
        chunk_size=row.chunk_size,
        total_chunks=row.total_chunks,
        received_chunks=received,
        status=uploads.effective_status(row),
        expires_at=row.expires_at,
        media_id=row.media_id if row.status == COMPLETED else None,
        created_at=row.created_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UploadSession)
async def create_upload(
    body: UploadCreate,
    response: Response,
    principal: Principal = Depends(require_roles(INSTRUCTOR, ADMIN)),
    ctx: MediaContext = Depends(media_context),
) -> UploadSession:
    """Open an upload (instructors and admins). Send the chunks, then complete it."""
    row = await uploads.create_upload(
        ctx.sessions,
        ctx.store,
        ctx.settings,
        principal,
        filename=body.filename,
        file_size=body.file_size,
        content_type=body.content_type,
    )
    response.headers["Location"] = f"/api/v1/media/uploads/{row.id}"
    return _session_view(row, [])


@router.put("/{upload_id}/chunks/{n}", response_model=ChunkReceipt, openapi_extra=_CHUNK_BODY)
async def put_chunk(
    upload_id: uuid.UUID,
    request: Request,
    n: int = Path(ge=0, description="Chunk number, from 0."),
    principal: Principal = Depends(current_principal),
    ctx: MediaContext = Depends(media_context),
) -> ChunkReceipt:
    """Store chunk ``n``; sending it again replaces it. Optional ``Content-MD5`` (base64)
    and ``X-Checksum-SHA256`` (hex or base64) are verified."""
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise ValidationFailed.field("Content-Length", "must be a number")
    row, chunk, count = await uploads.receive_chunk(
        ctx.sessions,
        ctx.store,
        ctx.settings,
        principal,
        upload_id,
        n,
        request.stream(),
        declared_length=int(length) if length is not None else None,
        checksums=uploads.parse_checksums(request.headers),
    )
    return ChunkReceipt(
        upload_id=row.id,
        number=chunk.number,
        size=chunk.size,
        md5=chunk.md5,
        sha256=chunk.sha256,
        received_count=count,
        total_chunks=row.total_chunks,
        expires_at=row.expires_at,
    )


@router.get("/{upload_id}", response_model=UploadSession)
async def get_upload(
    upload_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: MediaContext = Depends(media_context),
) -> UploadSession:
    """The upload and the chunks received so far (to resume after an interruption)."""
    async with ctx.sessions() as session:
        row, received = await uploads.get_upload(session, principal, upload_id)
    return _session_view(row, received)


@router.post(
    "/{upload_id}/complete", status_code=status.HTTP_201_CREATED, response_model=MediaFileDetail
)
async def complete_upload(
    upload_id: uuid.UUID,
    response: Response,
    principal: Principal = Depends(current_principal),
    ctx: MediaContext = Depends(media_context),
) -> dict[str, Any]:
    """Assemble the chunks into a media file (processing follows). Completing again
    answers the same file. 422 when chunks are missing or the bytes are not the
    declared type (the file is then deleted)."""
    media = await completion.complete_upload(ctx.sessions, ctx.store, principal, upload_id)
    response.headers["Location"] = f"/api/v1/media/{media.id}"
    return describe(media, ctx.signer, with_transcript=True)


@router.delete("/{upload_id}", status_code=status.HTTP_204_NO_CONTENT)
async def abort_upload(
    upload_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: MediaContext = Depends(media_context),
) -> Response:
    """Abort the upload and drop its chunks."""
    await uploads.abort_upload(ctx.sessions, ctx.store, principal, upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
