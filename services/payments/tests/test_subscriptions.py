"""Plans and subscriptions: subscribe, cancel at period end, expire, Stripe's updates."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from payments_service.cli import expire_now

SUBSCRIPTIONS = "/api/v1/payments/subscriptions"
ACTIVATED = "subscription.activated.v1"
CANCELED = "subscription.canceled.v1"


async def test_the_plans_show_price_and_ai_limit(client, settings):
    response = await client.get("/api/v1/payments/plans")
    assert response.status_code == 200
    plans = {p["name"]: p for p in response.json()["items"]}
    assert plans["free"] == {
        "name": "free",
        "title": "Free",
        "price": 0,
        "currency": "usd",
        "interval": None,
        "ai_daily_limit": settings.free_ai_daily_limit,
    }
    assert (plans["pro"]["price"], plans["pro"]["ai_daily_limit"]) == (
        settings.pro_price,
        settings.pro_ai_daily_limit,
    )


async def test_without_a_subscription_i_am_on_the_free_plan(client, make_user, settings):
    response = await client.get(f"{SUBSCRIPTIONS}/me", headers=make_user().headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["plan"], body["ai_daily_limit"]) == (
        None,
        "free",
        settings.free_ai_daily_limit,
    )


async def test_the_subscription_lifecycle(client, make_user, fake_stripe, outbox_events, settings):
    student = make_user()
    created = await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["plan"], body["status"], body["ai_daily_limit"]) == (
        "pro",
        "active",
        settings.pro_ai_daily_limit,
    )
    period_end = datetime.fromisoformat(body["current_period_end"])
    assert period_end > datetime.now(UTC) + timedelta(days=27)
    stripe_sub = fake_stripe.state.objects[body["provider_subscription_id"]]
    assert stripe_sub["metadata"]["subscription_id"] == body["id"]
    activated = await outbox_events(ACTIVATED)
    assert [e["data"] for e in activated] == [
        {"user_id": str(student.id), "plan": "pro", "ai_daily_limit": settings.pro_ai_daily_limit}
    ]
    me = (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()
    assert me["id"] == body["id"] and me["cancel_at_period_end"] is False

    # Cancel: the plan stays until the period ends.
    for _ in range(2):
        canceled = await client.delete(f"{SUBSCRIPTIONS}/me", headers=student.headers)
        assert canceled.status_code == 204
    me = (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()
    assert (me["status"], me["cancel_at_period_end"]) == ("active", True)
    assert stripe_sub["cancel_at_period_end"] is True
    assert await outbox_events(CANCELED) == []

    # The expiry job before the period end changes nothing; after it, the plan ends once.
    assert await expire_now(settings) == 0
    after = period_end + timedelta(seconds=1)
    assert await expire_now(settings, now=after) == 1
    assert await expire_now(settings, now=after) == 0
    ended = await outbox_events(CANCELED)
    assert [e["data"] for e in ended] == [
        {"user_id": str(student.id), "plan": "pro", "ai_daily_limit": settings.free_ai_daily_limit}
    ]
    me = (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()
    assert me["plan"] == "free" and me["id"] is None
    # And one may subscribe again.
    again = await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)
    assert again.status_code == 201


async def test_a_second_subscription_is_a_conflict(client, make_user):
    student = make_user()
    assert (
        await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)
    ).status_code == 201
    second = await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)
    assert second.status_code == 409


async def test_unknown_and_free_plans_cannot_be_subscribed(client, make_user):
    student = make_user()
    for plan in ("gold", "free"):
        response = await client.post(SUBSCRIPTIONS, json={"plan": plan}, headers=student.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "plan"


async def test_cancelling_nothing_is_not_found(client, make_user):
    assert (
        await client.delete(f"{SUBSCRIPTIONS}/me", headers=make_user().headers)
    ).status_code == 404


async def test_a_subscription_stripe_stopped_renewing_expires_after_the_grace(
    client, make_user, sessions, outbox_events, settings
):
    student = make_user()
    body = (await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)).json()
    period_end = datetime.fromisoformat(body["current_period_end"])
    within_grace = (
        period_end + timedelta(days=settings.subscription_grace_days) - timedelta(hours=1)
    )
    assert await expire_now(settings, now=within_grace) == 0
    assert await expire_now(settings, now=within_grace + timedelta(hours=2)) == 1
    assert len(await outbox_events(CANCELED)) == 1


async def test_stripe_ending_the_subscription_ends_it_once(
    client, make_user, fake_stripe, send_event, outbox_events
):
    student = make_user()
    body = (await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)).json()
    stripe_sub = dict(fake_stripe.state.objects[body["provider_subscription_id"]])
    now = int(time.time())
    ended = {**stripe_sub, "status": "canceled", "ended_at": now}
    for _ in range(2):
        await send_event("customer.subscription.deleted", ended, created=now)
    me = (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()
    assert me["plan"] == "free"
    assert len(await outbox_events(CANCELED)) == 1
    # An update sent earlier and delivered late does not bring it back.
    await send_event("customer.subscription.updated", stripe_sub, created=now - 10)
    assert (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()[
        "plan"
    ] == "free"


async def test_a_pending_subscription_activates_when_stripe_says_so_in_order(
    client, make_user, fake_stripe, send_event, outbox_events
):
    fake_stripe.state.new_subscription_status = "incomplete"  # real Stripe's first answer
    student = make_user()
    created = await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending"
    assert await outbox_events(ACTIVATED) == []
    stripe_sub = dict(fake_stripe.state.objects[body["provider_subscription_id"]])
    now = int(time.time())
    renewed_end = now + 60 * 86_400
    items = {
        "object": "list",
        "data": [{**stripe_sub["items"]["data"][0], "current_period_end": renewed_end}],
    }
    active = {**stripe_sub, "status": "active", "items": items}
    await send_event("customer.subscription.updated", active, created=now)
    await send_event("customer.subscription.updated", stripe_sub, created=now - 30)  # late
    me = (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()
    assert me["status"] == "active"
    assert datetime.fromisoformat(me["current_period_end"]).timestamp() == renewed_end
    assert len(await outbox_events(ACTIVATED)) == 1


async def test_a_pending_subscription_is_canceled_at_once(
    client, make_user, fake_stripe, outbox_events
):
    fake_stripe.state.new_subscription_status = "incomplete"
    student = make_user()
    body = (await client.post(SUBSCRIPTIONS, json={"plan": "pro"}, headers=student.headers)).json()
    assert (await client.delete(f"{SUBSCRIPTIONS}/me", headers=student.headers)).status_code == 204
    assert fake_stripe.state.objects[body["provider_subscription_id"]]["status"] == "canceled"
    assert (await client.get(f"{SUBSCRIPTIONS}/me", headers=student.headers)).json()["id"] is None
    assert await outbox_events() == []  # never active: nothing to announce
