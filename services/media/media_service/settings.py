"""Configuration of the media service (environment variables prefixed ``MEDIA_``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import ServiceSettings

MiB = 1024 * 1024
GiB = 1024 * MiB

DEV_S3_ACCESS_KEY_ID = "unpuzzle-dev-access-key"
DEV_S3_SECRET_ACCESS_KEY = "unpuzzle-dev-secret-key"
DEV_CDN_SIGNING_KEY = "dev-only-cdn-signing-key-change-me"

#: S3 accepts at most this many parts in one multipart upload.
S3_MAX_PARTS = 10_000


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_", extra="ignore")
    dev_secrets: ClassVar[dict[str, str]] = {
        "s3_access_key_id": DEV_S3_ACCESS_KEY_ID,
        "s3_secret_access_key": DEV_S3_SECRET_ACCESS_KEY,
        "cdn_signing_key": DEV_CDN_SIGNING_KEY,
    }

    service_name: str = "media"
    host: str = "127.0.0.1"
    port: int = 8103
    #: Largest request body: one upload chunk plus headroom (the gateway allows 16 MiB on
    #: the chunk route). Every other route is held to ``json_max_body_bytes``.
    max_body_bytes: int = 16 * MiB
    json_max_body_bytes: int = MiB

    # -- object storage (any S3-compatible store: AWS, Backblaze B2, MinIO, moto) ----------
    #: None (or empty) means AWS itself; the dev default is the local server that
    #: ``python -m media_service.local_s3`` starts.
    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    #: Endpoint written into presigned URLs when clients reach the store at another
    #: address than this service does (e.g. inside a cluster); default: s3_endpoint_url.
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket: str = "unpuzzle-media"
    s3_access_key_id: str = DEV_S3_ACCESS_KEY_ID
    s3_secret_access_key: SecretStr = SecretStr(DEV_S3_SECRET_ACCESS_KEY)
    #: "path" for local servers (moto, MinIO); "virtual" or "auto" for AWS and B2.
    s3_addressing_style: Literal["path", "virtual", "auto"] = "path"
    #: Create the bucket at start-up when it is missing; unset means yes, except with
    #: ENV=production (where buckets are provisioned, not conjured).
    s3_create_bucket: bool | None = None
    #: Seconds to connect / to wait for an answer from the store.
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 60.0
    #: Concurrent calls to the store per process (threads and pooled connections).
    s3_max_concurrency: int = 16
    #: The store's smallest part but the last (S3, B2 and MinIO: 5 MiB).
    s3_min_part_size: int = 5 * MiB

    # -- uploads -------------------------------------------------------------------------
    #: Size of every chunk but the last; also the S3 part size.
    chunk_size: int = 8 * MiB
    #: An upload session with no activity for this many seconds expires (each chunk
    #: received pushes the deadline back); ``cleanup-uploads`` aborts expired ones.
    upload_ttl: int = 24 * 3600
    #: Largest accepted file per kind of media (bytes).
    max_video_bytes: int = 5 * GiB
    max_audio_bytes: int = GiB
    max_image_bytes: int = 50 * MiB
    max_document_bytes: int = 200 * MiB

    # -- delivery ------------------------------------------------------------------------
    #: Seconds a signed download URL stays valid.
    url_ttl: int = 3600
    #: When set, URLs point at this CDN (``{base}/{key}?expires=&signature=``, an
    #: HMAC-SHA256 with ``cdn_signing_key``) instead of presigned store URLs.
    cdn_base_url: str | None = None
    cdn_signing_key: SecretStr = SecretStr(DEV_CDN_SIGNING_KEY)

    # -- processing (the worker) ------------------------------------------------------
    ffprobe_path: str = "ffprobe"
    ffmpeg_path: str = "ffmpeg"
    #: Seconds ffprobe, one thumbnail and one audio extraction may take.
    probe_timeout: float = 60.0
    thumbnail_timeout: float = 60.0
    audio_extract_timeout: float = 600.0
    #: Width of thumbnails in pixels (height keeps the aspect ratio).
    thumbnail_width: int = 480
    #: Attempts of one media file before it is marked failed, and the delays between them.
    processing_max_attempts: int = 5
    processing_backoff: list[float] = [5.0, 30.0, 120.0, 600.0]
    #: Seconds a worker owns a claimed job; a crashed worker's job is taken over after it.
    processing_lease: float = 1800.0
    #: Seconds between looks for due jobs when nothing woke the processor.
    processing_poll_interval: float = 2.0
    #: Where downloaded originals and intermediate files go (system temp when unset).
    work_dir: Path | None = None

    # -- transcripts (OpenAI audio API or any compatible server) ------------------------
    #: Transcripts are made only when a key is configured.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    transcription_model: str = "whisper-1"
    #: Ask for timed segments (``verbose_json``): the tutor then cites "video 0:12-0:18".
    #: Turn off for models that only answer text or json (gpt-4o-transcribe).
    transcription_timestamps: bool = True
    transcription_timeout: float = 300.0
    transcription_max_retries: int = 3
    #: The audio API refuses files over 25 MB; longer audio is not transcribed.
    transcription_max_bytes: int = 25 * 1000 * 1000

    #: Deliveries of a consumed event before it is dead-lettered.
    consumer_max_deliver: int = 5

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url", "cdn_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _consistent_sizes(self) -> Settings:
        if self.chunk_size < self.s3_min_part_size:
            raise ValueError(
                f"chunk_size ({self.chunk_size}) must be at least s3_min_part_size "
                f"({self.s3_min_part_size}): the store refuses smaller parts"
            )
        if self.chunk_size > self.max_body_bytes:
            raise ValueError("chunk_size must not exceed max_body_bytes")
        largest = max(self.max_video_bytes, self.max_audio_bytes, self.max_image_bytes)
        largest = max(largest, self.max_document_bytes)
        # Chunks grow for files that would need more than S3's part limit; they must
        # still fit in a request body.
        if -(-largest // S3_MAX_PARTS) > self.max_body_bytes:
            raise ValueError(
                f"the largest allowed file needs chunks over max_body_bytes to stay within "
                f"{S3_MAX_PARTS} parts; raise max_body_bytes or lower the size limits"
            )
        if not self.processing_backoff:
            raise ValueError("processing_backoff needs at least one delay")
        return self

    @property
    def creates_bucket(self) -> bool:
        """Whether start-up creates a missing bucket."""
        if self.s3_create_bucket is None:
            return self.env != "production"
        return self.s3_create_bucket

    def max_bytes_for(self, kind: str) -> int:
        """The size limit of a kind of media ("video", "audio", "image", "document")."""
        return {
            "video": self.max_video_bytes,
            "audio": self.max_audio_bytes,
            "image": self.max_image_bytes,
            "document": self.max_document_bytes,
        }[kind]
