"""Expiry of abandoned uploads (the ``cleanup-uploads`` job).

An open session idle for ``upload_ttl`` seconds expires: its multipart upload is
aborted (the store drops the parts) and its chunk rows go. Multipart uploads that no
session knows (a crash between the store and the database) are aborted too, and
finished sessions are forgotten after a while. Running it again changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.models import EXPIRED, OPEN, upload_sessions
from media_service.settings import Settings
from media_service.storage import ObjectStore
from media_service.uploads import KEY_PREFIX, close_session
from unpuzzle_common.db import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupReport:
    expired: int
    orphans_aborted: int
    sessions_deleted: int


async def cleanup_uploads(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    settings: Settings,
    *,
    keep_finished: timedelta = timedelta(days=7),
    batch_size: int = 100,
    now: datetime | None = None,
) -> CleanupReport:
    """The periodic job: expire idle sessions (aborting their multipart uploads), abort
    multipart uploads no session knows (a crash between the store and the database),
    and forget finished sessions after ``keep_finished``. Safe to run again and
    concurrently (rows are claimed with ``SKIP LOCKED``)."""
    now = now or datetime.now(UTC)
    expired = 0
    while True:
        async with transaction(sessions) as session:
            rows = (
                await session.execute(
                    select(
                        upload_sessions.c.id,
                        upload_sessions.c.storage_key,
                        upload_sessions.c.multipart_id,
                    )
                    .where(upload_sessions.c.status == OPEN, upload_sessions.c.expires_at <= now)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await store.abort_multipart(row.storage_key, row.multipart_id)
                await close_session(session, row.id, EXPIRED)
        expired += len(rows)
        if len(rows) < batch_size:
            break

    orphans = await _abort_orphans(sessions, store, settings, now)

    async with transaction(sessions) as session:
        result = await session.execute(
            delete(upload_sessions).where(
                upload_sessions.c.status != OPEN,
                upload_sessions.c.updated_at < now - keep_finished,
            )
        )
        deleted = result.rowcount or 0
    if expired or orphans or deleted:
        log.info(
            "uploads cleaned up",
            extra={"expired": expired, "orphans_aborted": orphans, "sessions_deleted": deleted},
        )
    return CleanupReport(expired=expired, orphans_aborted=orphans, sessions_deleted=deleted)


async def _abort_orphans(
    sessions: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    settings: Settings,
    now: datetime,
) -> int:
    # Only uploads older than the TTL: a younger one may be a session still being created.
    cutoff = now - timedelta(seconds=settings.upload_ttl)
    pending = [p for p in await store.pending_uploads(KEY_PREFIX) if p.initiated < cutoff]
    if not pending:
        return 0
    async with sessions() as session:
        known = set(
            await session.scalars(
                select(upload_sessions.c.multipart_id).where(
                    upload_sessions.c.multipart_id.in_([p.upload_id for p in pending]),
                    upload_sessions.c.status == OPEN,
                )
            )
        )
    aborted = 0
    for upload in pending:
        if upload.upload_id not in known:
            await store.abort_multipart(upload.key, upload.upload_id)
            aborted += 1
    return aborted
