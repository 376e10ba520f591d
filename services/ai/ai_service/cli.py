"""Command line of the AI service: ``python -m ai_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay and event consumers),
``migrate``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ai_service.settings import Settings


def _serve(settings: Settings, _: argparse.Namespace) -> None:
    import uvicorn

    from ai_service.main import create_app

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
    from ai_service.worker import run_worker

    asyncio.run(run_worker(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ai_service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API").set_defaults(run=_serve)
    sub.add_parser("worker", help="run the outbox relay and event consumers").set_defaults(
        run=_worker
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    args = parser.parse_args(argv)
    settings = Settings()
    from unpuzzle_common.observability import configure_logging

    configure_logging(settings.service_name, settings.log_level)
    args.run(settings, args)


if __name__ == "__main__":
    sys.exit(main())
