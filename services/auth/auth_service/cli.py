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


def _serve(settings: Settings, _: argparse.Namespace) -> None:
    import uvicorn

    from auth_service.main import create_app

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
    from auth_service.worker import run_worker

    asyncio.run(run_worker(settings))


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="auth_service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API").set_defaults(run=_serve)
    sub.add_parser("worker", help="run the outbox relay").set_defaults(run=_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    admin = sub.add_parser("create-admin", help="create the first admin (idempotent)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="default: $ADMIN_PASSWORD, else asked for")
    admin.add_argument("--full-name", default="Administrator")
    admin.set_defaults(run=_create_admin)
    rotate = sub.add_parser("rotate-keys", help="add a new signing key; the old one retires")
    rotate.add_argument("--lead", type=int, help="seconds before the new key signs")
    rotate.set_defaults(run=_rotate_keys)
    cleanup = sub.add_parser("cleanup-sessions", help="delete long-expired sessions (job)")
    cleanup.add_argument("--days", type=int, default=7)
    cleanup.set_defaults(run=_cleanup_sessions)
    args = parser.parse_args(argv)
    settings = Settings()
    from unpuzzle_common.observability import configure_logging

    configure_logging(settings.service_name, settings.log_level)
    args.run(settings, args)


if __name__ == "__main__":
    sys.exit(main())
