"""Events leave the services and reach NATS, seen by a client of the bus."""

from __future__ import annotations

import json
import time

import httpx
import nats
from nats.errors import TimeoutError as NatsTimeout


async def test_signup_publishes_user_registered(stack, api):
    nc = await nats.connect(stack.nats_url, connect_timeout=2)
    try:
        subscription = await nc.subscribe(f"{stack.prefix}.user.registered.v1")
        await nc.flush()  # the server knows the subscription before the signup happens
        email = api.new_email("events")
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
            response = await client.post(
                "/api/v1/auth/signup",
                json={"email": email, "password": api.password, "full_name": "Grace Hopper"},
            )
        assert response.status_code == 201, response.text
        user_id = response.json()["user"]["id"]

        deadline = time.monotonic() + 5  # DESIGN §3 promises cross-service effects in 2 s
        seen: list[dict] = []
        found = None
        while found is None and time.monotonic() < deadline:
            try:
                msg = await subscription.next_msg(timeout=max(0.05, deadline - time.monotonic()))
            except NatsTimeout:
                break
            envelope = json.loads(msg.data)
            seen.append(envelope)
            if envelope.get("data", {}).get("user_id") == user_id:
                found = (envelope, msg.headers or {})
        assert found, f"no user.registered.v1 for {user_id} within 5 s (saw {seen})"
        event, headers = found
        assert event["type"] == "user.registered.v1"
        assert event["source"] == "auth"
        assert event["subject"] == user_id
        assert event["data"]["email"] == email
        assert headers.get("Nats-Msg-Id") == event["id"]
    finally:
        await nc.close()
