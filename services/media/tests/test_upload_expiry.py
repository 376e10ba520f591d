"""Abandoned uploads expire; the cleanup job aborts their parts and is safe to repeat."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from media_service.cli import main
from media_service.models import upload_sessions
from media_service.upload_expiry import cleanup_uploads
from unpuzzle_common.db import transaction


async def test_expired_uploads_are_aborted_once(
    uploader, client, instructor, store, sessions, settings, pdf_bytes
):
    data = pdf_bytes(2 * 64 * 1024)
    idle = await uploader.start(instructor, data)
    await uploader.put_chunk(instructor, idle, 0, data)
    later = datetime.now(UTC) + timedelta(seconds=settings.upload_ttl + 60)

    first = await cleanup_uploads(sessions, store, settings, now=later)
    second = await cleanup_uploads(sessions, store, settings, now=later)

    assert (first.expired, second.expired) == (1, 0)
    assert await store.pending_uploads("media/") == []
    url = f"/api/v1/media/uploads/{idle['upload_id']}"
    session = (await client.get(url, headers=instructor.headers)).json()
    assert (session["status"], session["received_chunks"]) == ("expired", [])
    assert (await uploader.put_chunk(instructor, idle, 1, data)).status_code == 410


async def test_an_upload_past_its_deadline_is_expired_before_the_job_runs(
    uploader, client, instructor, settings, pdf_bytes, sessions
):
    data = pdf_bytes(100)
    upload = await uploader.start(instructor, data)
    async with transaction(sessions) as session:
        await session.execute(
            update(upload_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await uploader.put_chunk(instructor, upload, 0, data)).status_code == 410
    url = f"/api/v1/media/uploads/{upload['upload_id']}"
    assert (await client.get(url, headers=instructor.headers)).json()["status"] == "expired"


async def test_multipart_uploads_no_session_knows_are_aborted(store, sessions, settings):
    await store.start_multipart("media/orphan/original.mp4", "video/mp4")
    later = datetime.now(UTC) + timedelta(seconds=settings.upload_ttl + 60)

    # (Only uploads older than the TTL count as orphans; moto reports every upload as
    # initiated in 2010, so the grace for young ones cannot be shown here.)
    report = await cleanup_uploads(sessions, store, settings, now=later)

    assert report.orphans_aborted == 1
    assert await store.pending_uploads("media/") == []


async def test_the_cleanup_command_runs_the_job(app, settings, monkeypatch, capsys):
    for name, value in {
        "MEDIA_DATABASE_URL": settings.database_url,
        "MEDIA_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "MEDIA_S3_BUCKET": settings.s3_bucket,
        "MEDIA_CHUNK_SIZE": str(settings.chunk_size),
        "MEDIA_S3_MIN_PART_SIZE": str(settings.s3_min_part_size),
    }.items():
        monkeypatch.setenv(name, value)
    await asyncio.to_thread(main, ["cleanup-uploads"])
    assert "expired 0 uploads" in capsys.readouterr().out
