"""Command line of the auth service: ``python -m auth_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay), ``migrate``,
``create-admin``, ``rotate-keys``, ``cleanup-sessions`` (a scheduled job).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import timedelta

from auth_service.settings import Settings
from unpuzzle_common.cli import ServiceCommands


async def _with_session(settings: Settings, work):
    from unpuzzle_common.db import create_engine, session_factory, transaction

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _create_admin(settings: Settings, args: argparse.Namespace) -> None:
    from auth_service.passwords import PasswordHashing
    from auth_service.users import ensure_admin

    password = args.password or os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Password: ")
    hashing = PasswordHashing(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost,
        parallelism=settings.argon2_parallelism,
    )

    async def work(session):
        return await ensure_admin(
            session, hashing, email=args.email, password=password, full_name=args.full_name
        )

    user, created = asyncio.run(_with_session(settings, work))
    print(f"{'created' if created else 'updated'} admin {user.email} ({user.id})")


def _rotate_keys(settings: Settings, args: argparse.Namespace) -> None:
    from auth_service.signing_keys import rotate_signing_key

    async def work(session):
        return await rotate_signing_key(
            session,
            settings.key_encryption_secret,
            publish_lead=settings.key_publish_lead if args.lead is None else args.lead,
            token_ttl=settings.access_token_ttl,
        )

    kid = asyncio.run(_with_session(settings, work))
    print(f"new signing key {kid} published; it signs after the publish lead")


def _cleanup_sessions(settings: Settings, args: argparse.Namespace) -> None:
    from auth_service.tokens import delete_expired_sessions

    async def work(session):
        return await delete_expired_sessions(session, older_than=timedelta(days=args.days))

    print(f"deleted {asyncio.run(_with_session(settings, work))} expired or revoked sessions")


commands = ServiceCommands(
    "auth_service",
    __doc__,
    settings=Settings,
    app="auth_service.main:create_app",
    worker="auth_service.worker:run_worker",
    package_file=__file__,
    worker_help="run the outbox relay",
)
_admin = commands.command("create-admin", _create_admin, help="create the first admin (idempotent)")
_admin.add_argument("--email", required=True)
_admin.add_argument("--password", help="default: $ADMIN_PASSWORD, else asked for")
_admin.add_argument("--full-name", default="Administrator")
_rotate = commands.command(
    "rotate-keys", _rotate_keys, help="add a new signing key; the old one retires"
)
_rotate.add_argument("--lead", type=int, help="seconds before the new key signs")
_cleanup = commands.command(
    "cleanup-sessions", _cleanup_sessions, help="delete long-expired sessions (job)"
)
_cleanup.add_argument("--days", type=int, default=7)


def main(argv: list[str] | None = None) -> None:
    commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
