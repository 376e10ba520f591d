"""Upload (issue 5): a large file through the gateway in chunks vs. straight to S3.

A file of random bytes (default 200 MB; ``--quick`` 40 MB) is written to disk with a
PDF header, so the media service's sniffing accepts it and its worker has nothing to
process. In the same run:

1. *direct*: boto3 writes it to the stack's S3 store (the moto sidecar) as a multipart
   upload with the media service's part size and the upload client's parallelism — the
   same store, part size and client settings (checksums only where required) the service
   uses;
2. *gateway*: ``media_service.upload.upload_file`` (the upload CLI's code) sends it
   through the gateway: ``POST /uploads``, every chunk ``PUT`` with its ``Content-MD5``
   (4 in flight), ``POST /complete`` — the service hashes each chunk and streams it to
   the store as a part, then completes the multipart upload and sniffs the result;
3. *direct* again, so a drift during the run does not land on one side only.

The ratio is gateway ÷ the mean of the two direct runs (target ≥ 50 %). Peak RSS of the
media API (and nginx, the store) is reset before the gateway upload and read after it,
next to its RSS before: flat memory means the peak does not grow with the file.
The objects are deleted afterwards (the store keeps them in memory).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.accounts import sign_up
from bench.phase import PhaseResult, Row, verdict
from bench.procmem import PeakWatch, measure, service_processes
from bench.progress import log
from bench.stack import Stack
from bench.stackenv import LogWatch, require_own_stack, service_env, settings_kwargs

PHASE = "upload"
TARGET_RATIO = 0.5
MB = 1_000_000
PDF_HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3 bench upload\n"
#: An ISO base media ``ftyp`` box (for files over the document size limit).
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def make_file(directory: Path, size: int, *, mp4: bool) -> Path:
    """``size`` random bytes behind a PDF (or MP4) header, written in 8 MiB pieces."""
    path = directory / ("lecture.mp4" if mp4 else "lecture.pdf")
    header = MP4_HEADER if mp4 else PDF_HEADER
    piece = 8 * 1024 * 1024
    with path.open("wb") as out:
        out.write(header)
        left = size - len(header)
        while left > 0:
            n = min(piece, left)
            out.write(os.urandom(n))
            left -= n
    return path


class _ProgressSink:
    """Takes the upload client's ``\\r``-progress line and logs every quarter."""

    _PCT = re.compile(r"(\d+(?:\.\d+)?)%")

    def __init__(self, label: str) -> None:
        self.label = label
        self.next = 25.0

    def write(self, text: str) -> int:
        found = self._PCT.findall(text)
        if found:
            pct = float(found[-1])
            if pct >= self.next:
                log(PHASE, f"{self.label} {pct:.0f}%", percent=round(pct))
                self.next = (pct // 25 + 1) * 25
        return len(text)

    def flush(self) -> None:
        pass


def _s3_client(settings: Any) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.s3_region,
        signature_version="s3v4",
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=settings.s3_max_concurrency,
        s3={"addressing_style": settings.s3_addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=config,
    )


def _direct(client: Any, bucket: str, path: Path, part: int, parallel: int) -> float:
    """Seconds to write ``path`` to the store as a multipart upload; the object is deleted."""
    from boto3.s3.transfer import TransferConfig

    key = f"bench/{secrets.token_hex(8)}{path.suffix}"
    transfer = TransferConfig(
        multipart_threshold=part, multipart_chunksize=part, max_concurrency=parallel
    )
    started = time.perf_counter()
    client.upload_file(str(path), bucket, key, Config=transfer)
    seconds = time.perf_counter() - started
    client.delete_object(Bucket=bucket, Key=key)
    return seconds


async def run(*, stack: Stack, megabytes: int, parallel: int) -> PhaseResult:
    from media_service.settings import Settings
    from media_service.upload import upload_file

    require_own_stack(stack, PHASE)
    result = PhaseResult(PHASE, "Upload: chunks through the gateway vs. straight to S3")
    settings = Settings(**settings_kwargs(service_env(stack, "media"), "media"))
    size = megabytes * MB
    mp4 = size > settings.max_document_bytes
    content_type = "video/mp4" if mp4 else "application/pdf"
    part = settings.chunk_size
    gw = stack.gateway_url
    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        log(PHASE, f"writing {megabytes} MB of random bytes", path=str(tmp))
        path = await asyncio.to_thread(make_file, tmp, size, mp4=mp4)
        async with httpx.AsyncClient(timeout=30.0) as client:
            instructor = await sign_up(client, stack.auth_url, "uploader", role="instructor")
        s3 = _s3_client(settings)

        async def direct(label: str) -> float:
            log(PHASE, f"{label}: boto3 multipart to the store", endpoint=settings.s3_endpoint_url)
            seconds = await asyncio.to_thread(_direct, s3, settings.s3_bucket, path, part, parallel)
            log(
                PHASE,
                f"{label} done",
                seconds=round(seconds, 2),
                mb_s=round(size / MB / seconds, 1),
            )
            return seconds

        direct_s = [await direct("direct 1/2")]

        processes = service_processes(
            services=["media"],
            ports=stack.ports,
            gateway_port=stack.gateway_port,
            sidecars=("media-s3",),
        )
        before = {f"{role} {pid}": measure(role, pid).vm_rss_mib for role, pid in processes}
        watch = PeakWatch(processes, include_self=True)
        log(PHASE, "through the gateway: media_service.upload.upload_file", parallel=parallel)
        logs = LogWatch(stack, ("media-api",))
        started = time.perf_counter()
        try:
            media = await upload_file(
                path,
                token=instructor.access_token,
                base_url=gw,
                content_type=content_type,
                state_dir=tmp / "state",
                parallel=parallel,
                progress_stream=_ProgressSink("through the gateway"),  # type: ignore[arg-type]
            )
        except Exception as exc:
            raise RuntimeError(
                f"upload through the gateway failed: {exc}; logs: {logs.problems()}"
            ) from exc
        gateway_s = time.perf_counter() - started
        result.memory = watch.read()
        result.memory_note = (
            watch.note
            + "; RSS before the upload: "
            + ", ".join(
                f"{name.rsplit(' ', 1)[0]} {mib:.0f} MiB"
                for name, mib in before.items()
                if mib is not None
            )
        )
        log(PHASE, "through the gateway done", seconds=round(gateway_s, 2))
        async with httpx.AsyncClient(timeout=60.0) as client:
            gone = await client.delete(
                f"{gw}/api/v1/media/{media['id']}",
                headers={"Authorization": f"Bearer {instructor.access_token}"},
            )
        if gone.status_code != 204:
            log(PHASE, f"could not delete the uploaded media: {gone.status_code}")

        direct_s.append(await direct("direct 2/2"))
        s3.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    direct_mean = sum(direct_s) / len(direct_s)
    direct_rate = size / MB / direct_mean
    gateway_rate = size / MB / gateway_s
    ratio = gateway_rate / direct_rate
    chunks = -(-size // part)
    for i, seconds in enumerate(direct_s):
        result.rows.append(
            Row(
                f"direct to S3, boto3 ({i + 1}/2)",
                n=chunks,
                rate=size / MB / seconds,
                unit="MB/s",
                max=seconds * 1000,
            )
        )
    result.rows.append(
        Row(
            "through the gateway, chunked",
            n=chunks,
            rate=gateway_rate,
            unit="MB/s",
            max=gateway_s * 1000,
        )
    )
    result.target(
        f"gateway upload ≥ {TARGET_RATIO:.0%} of a direct S3 write",
        f"{gateway_rate:.1f} MB/s vs {direct_rate:.1f} MB/s = {ratio:.0%}",
        ratio >= TARGET_RATIO,
    )
    media_api = next((m for m in result.memory if m.role == "media API"), None)
    media_before = next(
        (mib for name, mib in before.items() if name.startswith("media API ")), None
    )
    growth = ""
    if media_api and media_api.vm_hwm_mib is not None and media_before is not None:
        growth = (
            f"; the media API's peak RSS was {media_api.vm_hwm_mib:.0f} MiB, "
            f"{media_api.vm_hwm_mib - media_before:+.0f} MiB over its RSS before the upload "
            f"(one chunk is {part / 2**20:g} MiB)"
        )
    result.lines += [
        f"{megabytes} MB of random bytes ({content_type}), {chunks} chunks of "
        f"{part / 2**20:g} MiB (the service's chunk size), {parallel} in flight on both sides.",
        "n is the number of chunks (parts); the max column is the whole upload in ms "
        "(session, chunks and completion for the gateway side).",
        f"Gateway ÷ mean of the direct runs: {ratio:.0%}{growth}.",
    ]
    for t in result.targets:
        log(PHASE, f"target {t.what}: {verdict(t.met)}", measured=t.measured)
    result.raw = {
        "bytes": size,
        "part_size": part,
        "parallel": parallel,
        "direct_seconds": direct_s,
        "gateway_seconds": gateway_s,
        "ratio": ratio,
        "media_rss_before_mib": before,
    }
    return result
