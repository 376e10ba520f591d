"""Sign-up, sign-in, refresh rotation and reuse detection, sign-out."""

from __future__ import annotations

PASSWORD = "correct horse battery"


async def test_signup_returns_user_and_tokens(client, signup, auth_header):
    body = await signup(role="instructor")
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["roles"] == ["instructor"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = await client.get("/api/v1/auth/me", headers=auth_header(body))
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]
