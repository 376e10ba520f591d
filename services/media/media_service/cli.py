"""Command line of the media service: ``python -m media_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay, event consumers, media
processing), ``migrate``, ``cleanup-uploads`` (a scheduled job: expire abandoned uploads).
The chunked-upload client is ``python -m media_service.upload``; a local S3 server
for development is ``python -m media_service.local_s3``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from media_service.settings import Settings
from unpuzzle_common.cli import ServiceCommands


async def cleanup(settings: Settings, *, keep_days: int) -> str:
    """Run the upload cleanup once; a one-line summary."""
    from media_service.storage import S3ObjectStore
    from media_service.upload_expiry import cleanup_uploads
    from unpuzzle_common.db import create_engine, session_factory

    engine = create_engine(settings.database_url, pool_size=1)
    store = S3ObjectStore(settings)
    try:
        report = await cleanup_uploads(
            session_factory(engine), store, settings, keep_finished=timedelta(days=keep_days)
        )
    finally:
        store.close()
        await engine.dispose()
    return (
        f"expired {report.expired} uploads, aborted {report.orphans_aborted} orphaned "
        f"multipart uploads, forgot {report.sessions_deleted} finished sessions"
    )


def _cleanup_uploads(settings: Settings, args: argparse.Namespace) -> None:
    print(asyncio.run(cleanup(settings, keep_days=args.keep_days)))


commands = ServiceCommands(
    "media_service",
    __doc__,
    settings=Settings,
    app="media_service.main:create_app",
    worker="media_service.worker:run_worker",
    package_file=__file__,
    worker_help="run the relay, consumers and processing",
)
_cleanup = commands.command(
    "cleanup-uploads", _cleanup_uploads, help="expire abandoned uploads and abort their parts (job)"
)
_cleanup.add_argument(
    "--keep-days", type=int, default=7, help="days finished upload sessions are kept"
)


def main(argv: list[str] | None = None) -> None:
    commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
