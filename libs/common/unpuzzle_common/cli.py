"""The command line every service shares: ``python -m <package> <command>``.

Each service gets ``serve`` (the API under uvicorn), ``worker`` (outbox relay and
consumers) and ``migrate`` (Alembic) from :class:`ServiceCommands`, and adds its
own commands (jobs, seeding) with :meth:`ServiceCommands.command`. Imports of the
app and the worker are deferred so a job does not load the web stack.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import Callable
from typing import Any

from unpuzzle_common.config import ServiceSettings
from unpuzzle_common.observability import configure_logging

Handler = Callable[[Any, argparse.Namespace], object]


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class ServiceCommands:
    """Builds a service's argument parser with the standard commands.

    ``app`` and ``worker`` are import paths (``"auth_service.main:create_app"``,
    ``"auth_service.worker:run_worker"``); ``package_file`` is the service package's
    ``__file__`` (to find its ``migrations/``).
    """

    def __init__(
        self,
        package: str,
        description: str | None,
        *,
        settings: Callable[[], ServiceSettings],
        app: str,
        worker: str,
        package_file: str,
        worker_help: str = "run the outbox relay and the event consumers",
    ) -> None:
        self._settings = settings
        self._app = app
        self._worker = worker
        self._package_file = package_file
        self.parser = argparse.ArgumentParser(
            prog=package,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self._sub = self.parser.add_subparsers(dest="command", required=True)
        self.command("serve", self._serve, help="run the HTTP API")
        self.command("worker", self._worker_command, help=worker_help)
        self.command("migrate", self._migrate, help="apply database migrations")

    def command(self, name: str, handler: Handler, *, help: str) -> argparse.ArgumentParser:
        """Add a command; ``handler(settings, args)`` runs it. Returns its parser."""
        parser = self._sub.add_parser(name, help=help, description=help)
        parser.set_defaults(run=handler)
        return parser

    def main(self, argv: list[str] | None = None) -> None:
        """Parse ``argv``, read the settings, configure JSON logs, run the command."""
        args = self.parser.parse_args(argv)
        settings = self._settings()
        configure_logging(settings.service_name, settings.log_level)
        args.run(settings, args)

    def _serve(self, settings: Any, _: argparse.Namespace) -> None:
        import uvicorn

        if "freeze_heap_after_startup" not in settings.model_fields_set:
            settings = settings.model_copy(update={"freeze_heap_after_startup": True})
        uvicorn.run(
            _load(self._app)(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        )

    def _worker_command(self, settings: Any, _: argparse.Namespace) -> None:
        asyncio.run(_load(self._worker)(settings))

    def _migrate(self, settings: Any, _: argparse.Namespace) -> None:
        from unpuzzle_common.migrations import service_dir, upgrade_to_head

        upgrade_to_head(service_dir(self._package_file), settings.database_url)
