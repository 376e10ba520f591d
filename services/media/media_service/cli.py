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


def _serve(settings: Settings, _: argparse.Namespace) -> None:
    import uvicorn

    from media_service.main import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


def _migrate(settings: Settings, _: argparse.Namespace) -> None:
    from unpuzzle_common.migrations import service_dir, upgrade_to_head

    upgrade_to_head(service_dir(__file__), settings.database_url)


def _worker(settings: Settings, _: argparse.Namespace) -> None:
    from media_service.worker import run_worker

    asyncio.run(run_worker(settings))


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="media_service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API").set_defaults(run=_serve)
    sub.add_parser("worker", help="run the relay, consumers and processing").set_defaults(
        run=_worker
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    cleanup_parser = sub.add_parser(
        "cleanup-uploads", help="expire abandoned uploads and abort their parts (job)"
    )
    cleanup_parser.add_argument(
        "--keep-days", type=int, default=7, help="days finished upload sessions are kept"
    )
    cleanup_parser.set_defaults(run=_cleanup_uploads)
    args = parser.parse_args(argv)
    settings = Settings()
    from unpuzzle_common.observability import configure_logging

    configure_logging(settings.service_name, settings.log_level)
    args.run(settings, args)


if __name__ == "__main__":
    sys.exit(main())
