"""Sign-up, sign-in, refresh rotation and reuse detection, sign-out."""

from __future__ import annotations

import time

import jwt
import pytest

PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


async def test_signup_returns_user_and_tokens(client, signup, auth_header):
    body = await signup(role="instructor")
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["roles"] == ["instructor"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = await client.get("/api/v1/auth/me", headers=auth_header(body))
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]


async def test_access_token_is_short_lived_es256_with_kid(client, signup):
    body = await signup()
    header = jwt.get_unverified_header(body["access_token"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert header["alg"] == "ES256" and header["kid"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iss"] == "unpuzzle-auth" and claims["aud"] == "unpuzzle-api"
    assert claims["sub"] == body["user"]["id"] and claims["roles"] == ["student"]
    assert claims["jti"] and claims["email"] == "ada@example.com"
    jwks = (await client.get("/api/v1/auth/.well-known/jwks.json")).json()
    assert header["kid"] in [k["kid"] for k in jwks["keys"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "x" * 200}, "password"),
        ({"password": "y" * 5000}, "password"),
        ({"password": "password123"}, "password"),
        ({"password": "aaaaaaaaaaaaaa"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"full_name": ""}, "full_name"),
        ({"role": "admin"}, "role"),
        ({"is_admin": True}, "is_admin"),
    ],
)
async def test_signup_rejects_bad_input_with_field_errors(client, change, field):
    body = {"email": "ada@example.com", "password": PASSWORD, "full_name": "Ada", **change}
    response = await client.post("/api/v1/auth/signup", json=body)
    assert_problem(response, 422, field)


async def test_signup_rejects_unknown_field_by_name(client):
    body = {"email": "a@example.com", "password": PASSWORD, "full_name": "A", "roles": ["admin"]}
    problem = assert_problem(await client.post("/api/v1/auth/signup", json=body), 422, "roles")
    assert problem["errors"][0]["message"] == "unknown field"


async def test_duplicate_email_is_409_whatever_the_case(client, signup):
    await signup()
    body = {"email": "ADA@Example.com", "password": PASSWORD, "full_name": "Ada"}
    assert_problem(await client.post("/api/v1/auth/signup", json=body), 409, "email")


async def test_signup_with_no_body_is_422(client):
    assert_problem(await client.post("/api/v1/auth/signup"), 422)


async def test_signin_returns_tokens(signup, signin):
    await signup()
    response = await signin()
    assert response.status_code == 200
    assert response.json()["user"]["email"] == "ada@example.com"
    assert response.json()["refresh_token"]


async def test_unknown_email_and_wrong_password_answer_alike(signup, signin):
    await signup()
    wrong_password = await signin(password="not the password at all")
    unknown_email = await signin(email="nobody@example.com")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json() | {
        "instance": wrong_password.json()["instance"]
    }
    # Both paths run a full argon2 verification; the timings are of the same order.
    started = time.perf_counter()
    await signin(password="not the password at all x")
    known = time.perf_counter() - started
    started = time.perf_counter()
    await signin(email="nobody-else@example.com")
    unknown = time.perf_counter() - started
    assert unknown > known / 5


async def test_signin_is_throttled_per_account_even_with_the_right_password(signup, signin):
    await signup()
    for _ in range(5):
        assert (await signin(password="wrong password here")).status_code == 401
    locked = await signin()
    assert_problem(locked, 429)
    assert int(locked.headers["retry-after"]) > 0


async def test_signin_is_throttled_per_address_across_accounts(signin, settings):
    for i in range(settings.signin_max_failures_per_address):
        await signin(email=f"guess{i}@example.com", **{"X-Real-IP": "203.0.113.9"})
    response = await signin(email="another@example.com", **{"X-Real-IP": "203.0.113.9"})
    assert_problem(response, 429)
    other_address = await signin(email="another@example.com", **{"X-Real-IP": "198.51.100.1"})
    assert other_address.status_code == 401


async def test_refresh_rotates_the_pair(client, signup, auth_header):
    first = await signup()
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (await client.get("/api/v1/auth/me", headers=auth_header(second))).status_code == 200


async def test_replayed_refresh_token_revokes_the_family(client, signup):
    first = await signup()
    second = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_problem(replay, 401)
    # The thief's replay took the legitimate holder's newer token down with it.
    newer = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert_problem(newer, 401)


async def test_unknown_refresh_token_is_401(client):
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"}), 401)


async def test_signout_ends_the_session(client, signup):
    tokens = await signup()
    response = await client.post(
        "/api/v1/auth/signout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_problem(again, 401)
    # Signing out twice (or with a stranger's garbage) is harmless.
    assert (
        await client.post("/api/v1/auth/signout", json={"refresh_token": "x"})
    ).status_code == 204


async def test_me_requires_a_valid_token(client, signup):
    assert_problem(await client.get("/api/v1/auth/me"), 401)
    tokens = await signup()
    tampered = tokens["access_token"][:-4] + (
        "AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB"
    )
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tampered}"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_signup_is_idempotent_with_a_key(client):
    body = {"email": "idem@example.com", "password": PASSWORD, "full_name": "Idem"}
    headers = {"Idempotency-Key": "signup-1"}
    first = await client.post("/api/v1/auth/signup", json=body, headers=headers)
    second = await client.post("/api/v1/auth/signup", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["user"]["id"] == first.json()["user"]["id"]
