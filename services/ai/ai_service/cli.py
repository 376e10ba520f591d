"""Command line of the AI service: ``python -m ai_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay and event consumers),
``migrate``.
"""

from __future__ import annotations

import sys

from ai_service.settings import Settings
from unpuzzle_common.cli import ServiceCommands

commands = ServiceCommands(
    "ai_service",
    __doc__,
    settings=Settings,
    app="ai_service.main:create_app",
    worker="ai_service.worker:run_worker",
    package_file=__file__,
)


def main(argv: list[str] | None = None) -> None:
    commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
