"""The development helpers: confirming a payment like Stripe would, the expiry command."""

from __future__ import annotations

import uuid

import pytest

from payments_service.cli import main
from payments_service.dev_webhooks import confirm_payment

WEBHOOK_URL = "http://payments.test/api/v1/payments/webhooks/stripe"


async def test_confirm_pays_at_stripe_and_delivers_the_signed_success(
    client, settings, make_user, publish_course, buy, payment_row, outbox_events, fake_stripe
):
    payment = await buy(make_user(), await publish_course())
    result = await confirm_payment(
        settings, uuid.UUID(payment["payment_id"]), webhook_url=WEBHOOK_URL, client=client
    )
    assert (result.event_type, result.status_code) == ("payment_intent.succeeded", 200)
    assert fake_stripe.state.objects[payment["provider_payment_id"]]["status"] == "succeeded"
    assert (await payment_row(payment["payment_id"])).status == "succeeded"
    assert len(await outbox_events("payment.succeeded.v1")) == 1


async def test_confirm_with_a_declined_card_fails_the_payment(
    client, settings, make_user, publish_course, buy, payment_row, outbox_events
):
    payment = await buy(make_user(), await publish_course())
    result = await confirm_payment(
        settings,
        uuid.UUID(payment["payment_id"]),
        decline=True,
        webhook_url=WEBHOOK_URL,
        client=client,
    )
    assert result.event_type == "payment_intent.payment_failed"
    row = await payment_row(payment["payment_id"])
    assert (row.status, row.failure_reason) == ("failed", "Your card was declined.")
    assert await outbox_events() == []


async def test_confirm_of_an_unknown_payment_says_so(settings, app):
    with pytest.raises(LookupError):
        await confirm_payment(settings, uuid.uuid4(), webhook_url=WEBHOOK_URL)


def test_the_cli_lists_its_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "worker", "migrate", "expire-subscriptions", "confirm", "fake-stripe"):
        assert command in out
