"""Request and response models of the media API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class UploadCreate(BaseModel):
    """Start a resumable upload: what the file claims to be."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, examples=["lesson-1.mp4"])
    file_size: int = Field(ge=1, description="Exact size in bytes.", examples=[52428800])
    content_type: str = Field(min_length=1, max_length=100, examples=["video/mp4"])


class UploadSession(BaseModel):
    """A resumable upload; ``received_chunks`` says what a resuming client may skip."""

    upload_id: uuid.UUID
    filename: str
    content_type: str
    kind: Literal["video", "audio", "image", "document"]
    file_size: int
    chunk_size: int = Field(description="Size of every chunk but the last (bytes).")
    total_chunks: int
    received_chunks: list[int] = Field(description="Numbers (from 0) of the chunks stored.")
    status: Literal["open", "completed", "aborted", "expired", "rejected"]
    expires_at: datetime = Field(description="When an idle upload expires; each chunk extends it.")
    media_id: uuid.UUID | None = Field(description="The media file, once completed.")
    created_at: datetime


class ChunkReceipt(BaseModel):
    """One chunk stored."""

    upload_id: uuid.UUID
    number: int
    size: int
    md5: str = Field(description="Hex MD5 of the chunk as received.")
    sha256: str = Field(description="Hex SHA-256 of the chunk as received.")
    received_count: int
    total_chunks: int
    expires_at: datetime


class MediaFile(BaseModel):
    """A stored media file; ``url`` is a signed download link valid until ``url_expires_at``."""

    id: uuid.UUID
    owner_id: uuid.UUID
    filename: str
    content_type: str
    kind: Literal["video", "audio", "image", "document"]
    size: int
    processing_status: Literal["pending", "processing", "ready", "failed"]
    processing_error: str | None = None
    metadata: dict[str, Any] = Field(
        description="What processing found: duration, codecs, width, height, ..."
    )
    duration: float | None = Field(description="Playing time in seconds, once processed.")
    url: str
    url_expires_at: datetime
    thumbnail_url: str | None = None
    has_transcript: bool
    created_at: datetime
    processed_at: datetime | None = None


class MediaFileDetail(MediaFile):
    """One media file with its transcript (when one was made)."""

    transcript: str | None = None
