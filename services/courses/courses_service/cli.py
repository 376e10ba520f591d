"""Command line of the courses service: ``python -m courses_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay + event consumers),
``migrate``, ``seed`` (a demo catalog).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from courses_service.settings import Settings
from unpuzzle_common.cli import ServiceCommands


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


commands = ServiceCommands(
    "courses_service",
    __doc__,
    settings=Settings,
    app="courses_service.main:create_app",
    worker="courses_service.worker:run_worker",
    package_file=__file__,
)
seed = commands.command("seed", _seed, help="load a demo catalog (idempotent; --reset starts over)")
seed.add_argument("--courses", type=int, default=300, help="courses to have (default 300)")
seed.add_argument("--sections", type=int, default=None, help="sections per course (3-6)")
seed.add_argument("--lessons", type=int, default=None, help="lessons per section (2-5)")
seed.add_argument("--enrollments", type=int, default=None, help="default: 10 per course")
seed.add_argument("--reviews", type=int, default=None, help="default: 4 per course")
seed.add_argument(
    "--reset", action="store_true", help="delete every course, enrollment and review first"
)


def main(argv: list[str] | None = None) -> None:
    commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
