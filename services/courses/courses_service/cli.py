"""Command line of the courses service: ``python -m courses_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay + event consumers),
``migrate``, ``seed`` (a demo catalog).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from courses_service.settings import Settings


def _serve(settings: Settings, _: argparse.Namespace) -> None:
    import uvicorn

    from courses_service.main import create_app

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
    from courses_service.worker import run_worker

    asyncio.run(run_worker(settings))


def _seed(settings: Settings, args: argparse.Namespace) -> None:
    from courses_service.seed import SeedPlan, run_seed

    plan = SeedPlan(
        courses=args.courses,
        sections_per_course=args.sections,
        lessons_per_section=args.lessons,
        enrollments=args.enrollments,
        reviews=args.reviews,
        reset=args.reset,
    )
    asyncio.run(run_seed(settings, plan, out=print))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="courses_service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API").set_defaults(run=_serve)
    sub.add_parser("worker", help="run the outbox relay and the consumers").set_defaults(
        run=_worker
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    seed = sub.add_parser("seed", help="load a demo catalog (idempotent; --reset starts over)")
    seed.add_argument("--courses", type=int, default=300, help="courses to have (default 300)")
    seed.add_argument("--sections", type=int, default=None, help="sections per course (3-6)")
    seed.add_argument("--lessons", type=int, default=None, help="lessons per section (2-5)")
    seed.add_argument("--enrollments", type=int, default=None, help="default: 10 per course")
    seed.add_argument("--reviews", type=int, default=None, help="default: 4 per course")
    seed.add_argument(
        "--reset", action="store_true", help="delete every course, enrollment and review first"
    )
    seed.set_defaults(run=_seed)
    args = parser.parse_args(argv)
    settings = Settings()
    from unpuzzle_common.observability import configure_logging

    configure_logging(settings.service_name, settings.log_level)
    args.run(settings, args)


if __name__ == "__main__":
    sys.exit(main())
