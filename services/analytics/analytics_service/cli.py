"""Command line of the analytics service: ``python -m analytics_service <command>``.

Commands: ``serve`` (the API), ``worker`` (the event consumers), ``migrate``,
``rebuild`` (recompute every rollup from the stored facts), ``daily-report`` (a
scheduled job: store a day's report; safe to run again).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date

from analytics_service.settings import Settings
from unpuzzle_common.cli import ServiceCommands


async def _with_session(settings: Settings, work):
    from unpuzzle_common.db import create_engine, session_factory, transaction

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _rebuild(settings: Settings, _: argparse.Namespace) -> None:
    from analytics_service.ingestion import rebuild_from_facts

    count = asyncio.run(_with_session(settings, rebuild_from_facts))
    print(f"rebuilt the course directory and every rollup from {count} facts")


def _daily_report(settings: Settings, args: argparse.Namespace) -> None:
    from analytics_service.daily_reports import generate_daily_report, yesterday

    day = args.date or yesterday()

    async def work(session):
        return await generate_daily_report(session, day)

    report = asyncio.run(_with_session(settings, work))
    print(f"stored the daily report of {day}; courses with activity: {len(report.courses)}")


commands = ServiceCommands(
    "analytics_service",
    __doc__,
    settings=Settings,
    app="analytics_service.main:create_app",
    worker="analytics_service.worker:run_worker",
    package_file=__file__,
    worker_help="run the event consumers",
)
commands.command(
    "rebuild", _rebuild, help="recompute the rollups and the course directory from the facts"
)
_daily = commands.command(
    "daily-report", _daily_report, help="store a day's report (job; idempotent)"
)
_daily.add_argument(
    "--date", type=date.fromisoformat, help="UTC day, YYYY-MM-DD (default: yesterday)"
)


def main(argv: list[str] | None = None) -> None:
    commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
