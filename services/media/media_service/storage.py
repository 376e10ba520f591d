"""Object storage behind one interface: S3 (and anything that speaks it) through boto3.

boto3 is synchronous; every call runs in this store's own thread pool so request
handlers never block the event loop, and the pool bounds how many calls are in flight.
Local development and the tests use the same code against moto's S3 server
(:mod:`media_service.local_s3`); Backblaze B2, MinIO and AWS differ only in settings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import boto3
from botocore.client import Config
from botocore.exceptions import BotoCoreError, ClientError

from media_service.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class StorageError(RuntimeError):
    """The object store failed or refused a request (network, auth, missing bucket...)."""


class NoSuchUpload(StorageError):
    """The multipart upload does not exist (completed, aborted or never started)."""


class NoSuchKey(StorageError):
    """The object does not exist."""


@dataclass(frozen=True)
class StoredPart:
    """One part of a multipart upload as the store reports it."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload the store still holds."""

    key: str
    upload_id: str
    initiated: datetime


class ObjectStore(Protocol):
    """What the media service needs from an object store."""

    bucket: str

    async def ensure_bucket(self) -> None: ...
    async def check(self) -> None: ...
    async def start_multipart(self, key: str, content_type: str) -> str: ...
    async def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, md5_b64: str
    ) -> str: ...
    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]: ...
    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[StoredPart]
    ) -> None: ...
    async def abort_multipart(self, key: str, upload_id: str) -> None: ...
    async def pending_uploads(self, prefix: str) -> list[PendingUpload]: ...
    async def read_range(self, key: str, start: int, length: int) -> bytes: ...
    async def download(self, key: str, path: Path) -> None: ...
    async def put(self, key: str, body: bytes, content_type: str) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    def presigned_get(
        self, key: str, *, expires_in: int, filename: str | None, content_type: str | None
    ) -> str: ...
    def close(self) -> None: ...


def _client(settings: Settings, endpoint_url: str | None) -> Any:
    config = Config(
        region_name=settings.s3_region,
        signature_version="s3v4",
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=settings.s3_max_concurrency,
        s3={"addressing_style": settings.s3_addressing_style},
        # Checksums beyond Content-MD5 (CRC32 trailers) are not understood by every
        # S3-compatible store: send them only where the API requires them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=config,
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStore:
    """:class:`ObjectStore` over boto3 (endpoint, region, bucket and keys from settings)."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self._client = _client(settings, settings.s3_endpoint_url)
        # Presigned URLs carry the host they were signed for: sign them for the address
        # clients use when it differs from ours.
        public = settings.s3_public_endpoint_url
        self._signer = _client(settings, public) if public else self._client
        self._pool = ThreadPoolExecutor(
            max_workers=settings.s3_max_concurrency, thread_name_prefix="s3"
        )

    async def _call(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))
        except ClientError as exc:
            code = _error_code(exc)
            if code == "NoSuchUpload":
                raise NoSuchUpload(str(exc)) from exc
            if code in ("NoSuchKey", "404"):
                raise NoSuchKey(f"{fn.__name__}: {exc}") from exc
            raise StorageError(f"{fn.__name__}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{fn.__name__}: {exc}") from exc

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (for development and tests)."""
        try:
            await self._call(self._client.head_bucket, Bucket=self.bucket)
            return
        except StorageError:
            pass
        try:
            await self._call(self._client.create_bucket, Bucket=self.bucket)
        except StorageError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise
        log.info("created bucket %s", self.bucket)

    async def check(self) -> None:
        """Raise :class:`StorageError` unless the bucket answers (readiness)."""
        await self._call(self._client.head_bucket, Bucket=self.bucket)

    async def start_multipart(self, key: str, content_type: str) -> str:
        answer = await self._call(
            self._client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
        )
        return str(answer["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, md5_b64: str
    ) -> str:
        """Store part ``number`` (1-based, replacing an earlier one); returns its ETag.

        The MD5 lets the store verify the bytes it received.
        """
        answer = await self._call(
            self._client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=md5_b64,
        )
        return str(answer["ETag"])

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        parts: list[StoredPart] = []
        marker = 0
        while True:
            answer = await self._call(
                self._client.list_parts,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumberMarker=marker,
                MaxParts=1000,
            )
            parts += [
                StoredPart(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"]))
                for p in answer.get("Parts", [])
            ]
            if not answer.get("IsTruncated"):
                return parts
            marker = int(answer["NextPartNumberMarker"])

    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None:
        await self._call(
            self._client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an upload and drop its parts; an upload already gone is not an error."""
        try:
            await self._call(
                self._client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except NoSuchUpload:
            pass

    async def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """Multipart uploads under ``prefix`` that were neither completed nor aborted."""
        found: list[PendingUpload] = []
        key_marker: str | None = None
        id_marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if key_marker is not None:
                kwargs["KeyMarker"] = key_marker
                kwargs["UploadIdMarker"] = id_marker or ""
            answer = await self._call(self._client.list_multipart_uploads, **kwargs)
            found += [
                PendingUpload(str(u["Key"]), str(u["UploadId"]), u["Initiated"])
                for u in answer.get("Uploads", [])
            ]
            if not answer.get("IsTruncated"):
                return found
            key_marker = answer.get("NextKeyMarker")
            id_marker = answer.get("NextUploadIdMarker")

    async def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of an object from offset ``start``."""

        def read() -> bytes:
            answer = self._client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
            with answer["Body"] as body:
                return body.read(length)

        read.__name__ = "get_object"
        return await self._call(read)

    async def download(self, key: str, path: Path) -> None:
        """Stream an object into a file (never whole in memory)."""
        await self._call(
            self._client.download_file, Bucket=self.bucket, Key=key, Filename=str(path)
        )

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        await self._call(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
        )

    async def delete(self, *keys: str) -> None:
        """Delete objects; missing ones are not an error (S3 semantics)."""
        if not keys:
            return
        answer = await self._call(
            self._client.delete_objects,
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        if answer.get("Errors"):
            raise StorageError(f"delete_objects: {answer['Errors']}")

    def presigned_get(
        self, key: str, *, expires_in: int, filename: str | None, content_type: str | None
    ) -> str:
        """A signed GET URL valid for ``expires_in`` seconds (computed locally, no call)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ResponseContentType"] = content_type
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        return str(
            self._signer.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in, HttpMethod="GET"
            )
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
        if self._signer is not self._client:
            self._signer.close()


async def prepare_bucket(store: ObjectStore, settings: Settings) -> None:
    """Create the bucket when configured to; a store that is down at start-up is logged
    (readiness says so, and every call retries), not fatal."""
    if not settings.creates_bucket:
        return
    try:
        await store.ensure_bucket()
    except StorageError as exc:
        log.warning("object store not ready at start-up: %s", exc)


def content_disposition(filename: str) -> str:
    """``inline`` with the original name, RFC 6266/5987 encoded (safe for any characters)."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
