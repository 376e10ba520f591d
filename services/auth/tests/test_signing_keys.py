"""Signing keys: JWKS, rotation without logging anyone out, publish-before-use."""

from __future__ import annotations

import jwt

from auth_service.signing_keys import rotate_signing_key
from unpuzzle_common.db import transaction


async def rotate(app, *, lead: int) -> str:
    ctx = app.state.auth
    async with transaction(ctx.sessions) as session:
        kid = await rotate_signing_key(
            session,
            ctx.settings.key_encryption_secret,
            publish_lead=lead,
            token_ttl=ctx.settings.access_token_ttl,
        )
    ctx.keys._loaded_at = 0  # the ring re-reads every few seconds; don't wait in tests
    return kid


def kid_of(tokens: dict) -> str:
    return jwt.get_unverified_header(tokens["access_token"])["kid"]


async def test_jwks_serves_public_ec_keys_only(client):
    response = await client.get("/api/v1/auth/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256" and keys[0]["alg"] == "ES256"
    assert "d" not in keys[0]  # never the private part


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    app, client, signup, signin, auth_header
):
    before = await signup()
    new_kid = await rotate(app, lead=0)
    after = (await signin()).json()
    assert kid_of(after) == new_kid != kid_of(before)
    jwks = (await client.get("/api/v1/auth/.well-known/jwks.json")).json()
    assert {kid_of(before), new_kid} <= {k["kid"] for k in jwks["keys"]}
    for tokens in (before, after):
        assert (await client.get("/api/v1/auth/me", headers=auth_header(tokens))).status_code == 200


async def test_a_new_key_is_published_before_it_signs(app, client, signup, signin):
    first = await signup()
    upcoming = await rotate(app, lead=3600)
    jwks = (await client.get("/api/v1/auth/.well-known/jwks.json")).json()
    assert upcoming in {k["kid"] for k in jwks["keys"]}
    assert kid_of((await signin()).json()) == kid_of(first)


async def test_private_keys_are_encrypted_at_rest(app):
    from sqlalchemy import select

    from auth_service.models import signing_keys

    async with app.state.auth.sessions() as session:
        stored = await session.scalar(select(signing_keys.c.private_key))
    assert b"PRIVATE KEY" not in stored
