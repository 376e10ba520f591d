"""Command line of the payments service: ``python -m payments_service <command>``.

Commands: ``serve`` (the API), ``worker`` (outbox relay + event consumers),
``migrate``, ``expire-subscriptions`` (a scheduled job), and for development
``confirm PAYMENT_ID`` (pay with a test card and deliver Stripe's signed webhook) and
``fake-stripe`` (the local Stripe-compatible server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta

from payments_service.settings import Settings
from unpuzzle_common.cli import ServiceCommands


async def expire_now(settings: Settings, now: datetime | None = None) -> int:
    """Run the expiry job once; returns how many subscriptions ended."""
    from payments_service.plans import PlanCatalog
    from payments_service.subscriptions import expire_subscriptions
    from unpuzzle_common.db import create_engine, session_factory, transaction

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            return await expire_subscriptions(
                session,
                PlanCatalog.from_settings(settings),
                now=now or datetime.now(UTC),
                grace=timedelta(days=settings.subscription_grace_days),
            )
    finally:
        await engine.dispose()


def _expire_subscriptions(settings: Settings, _: argparse.Namespace) -> None:
    print(f"ended {asyncio.run(expire_now(settings))} subscriptions")


def _confirm(settings: Settings, args: argparse.Namespace) -> None:
    from payments_service.dev_webhooks import confirm_payment

    result = asyncio.run(
        confirm_payment(
            settings, args.payment_id, decline=args.decline, webhook_url=args.webhook_url
        )
    )
    print(
        f"sent {result.event_type} ({result.event_id}): the webhook answered {result.status_code}"
    )
    if result.status_code >= 300:
        sys.exit(1)


def _fake_stripe(settings: Settings, args: argparse.Namespace) -> None:
    from payments_service.fake_stripe import serve

    serve(args.host, args.port)


commands = ServiceCommands(
    "payments_service",
    __doc__,
    settings=Settings,
    app="payments_service.main:create_app",
    worker="payments_service.worker:run_worker",
    package_file=__file__,
)
commands.command(
    "expire-subscriptions",
    _expire_subscriptions,
    help="end subscriptions whose period is over (job)",
)
_confirm_parser = commands.command(
    "confirm", _confirm, help="dev: pay a pending payment and send Stripe's signed webhook"
)
_confirm_parser.add_argument("payment_id", type=uuid.UUID)
_confirm_parser.add_argument("--decline", action="store_true", help="use a card that is declined")
_confirm_parser.add_argument("--webhook-url", help="default: $PAYMENTS_WEBHOOK_URL")
_fake = commands.command(
    "fake-stripe", _fake_stripe, help="dev: run the local Stripe-compatible server"
)
_fake.add_argument("--host", default="127.0.0.1")
_fake.add_argument("--port", type=int, default=12111)


def main(argv: list[str] | None = None) -> None:
    commands.main(argv)


if __name__ == "__main__":
    sys.exit(main())
