"""Accounts and sessions through the gateway, as a client sees them."""

from __future__ import annotations

import base64
import json


def test_signup_signin_me_refresh_and_replay_revokes_the_family(api, problem):
    email = api.new_email("journey")
    created = api.signup(email, role="instructor")
    assert created["token_type"] == "bearer"
    user_id = created["user"]["id"]

    signed_in = api.signin(email)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()

    me = api.http.get("/api/v1/auth/me", headers=api.bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user_id
    assert me.json()["email"] == email
    assert me.json()["roles"] == ["instructor"]

    refreshed = api.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new_pair = refreshed.json()
    assert new_pair["refresh_token"] != tokens["refresh_token"]
    # The signed-in device's session, as its own (refreshed) access token sees it.
    (session_id,) = [s["id"] for s in api.sessions(new_pair["access_token"]) if s["current"]]
    assert session_id in [s["id"] for s in api.sessions(created["access_token"])]

    # The spent refresh token is replayed: refused, and the whole family goes with it.
    problem(api.refresh(tokens["refresh_token"]), 401)
    problem(api.refresh(new_pair["refresh_token"]), 401)
    assert session_id not in [s["id"] for s in api.sessions(created["access_token"])]


def test_client_sent_identity_headers_are_ignored(api, problem):
    alice, bob = api.signup(api.new_email("alice")), api.signup(api.new_email("bob"))
    me = api.http.get(
        "/api/v1/auth/me",
        headers={
            **api.bearer(alice["access_token"]),
            "X-User-Id": bob["user"]["id"],
            "X-User-Email": bob["user"]["email"],
            "X-User-Roles": "admin",
        },
    )
    assert me.status_code == 200, me.text
    assert me.json()["id"] == alice["user"]["id"]
    assert me.json()["roles"] == ["student"]

    # A claimed identity without a token gets nowhere.
    anonymous = api.http.get("/api/v1/auth/me", headers={"X-User-Id": bob["user"]["id"]})
    problem(anonymous, 401)


def test_admin_from_the_environment_can_sign_in(api, stack):
    response = api.signin(stack.admin_email, stack.admin_password)
    assert response.status_code == 200, response.text
    assert "admin" in response.json()["user"]["roles"]


def test_tampered_token_is_refused_by_the_gateway(api, problem):
    header, payload, signature = api.signup()["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    response = api.http.get("/api/v1/auth/me", headers=api.bearer(f"{header}.{forged}.{signature}"))
    body = problem(response, 401)
    # The gateway's own answer (the services' problem types live under docs.unpuzzle.dev).
    assert body["type"] == "about:blank"
    assert 'realm="unpuzzle"' in response.headers["www-authenticate"]
    assert "invalid_token" in response.headers["www-authenticate"]
