"""Rate limits: per address, per verified user, strict on credential endpoints.

Each test starts its own instance so its buckets start empty and its limits can be
tight enough to trip in a handful of requests.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway.tests.support import SigningKey, bearer, jwks


def assert_too_many(response: httpx.Response) -> dict:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["status"] == 429
    return body


def statuses(http: httpx.Client, count: int, method: str, path: str, **kwargs) -> list[int]:
    return [http.request(method, path, **kwargs).status_code for _ in range(count)]


def test_signin_brute_force_is_throttled_with_default_limits(start_gateway, upstream):
    # Default settings: signin 30r/m with a burst of 10, everything else generous.
    gateway = start_gateway({"auth": upstream.address}, jwks(SigningKey.es256()))
    attempt = {"json": {"email": "ada@example.com", "password": "guess"}}

    with gateway.client() as http:
        codes = statuses(http, 11, "POST", "/api/v1/auth/signin", **attempt)
        throttled = http.post("/api/v1/auth/signin", **attempt)
        other_route = http.post("/api/v1/auth/refresh", json={"refresh_token": "x"})

    assert codes == [200] * 11  # the first request plus the burst of 10
    assert_too_many(throttled)
    assert int(throttled.headers["retry-after"]) == 2  # 30 per minute: one per 2 s
    assert other_route.status_code == 200


def test_address_limit_applies_to_every_route(start_gateway, upstream):
    gateway = start_gateway(
        {"courses": upstream.address},
        jwks(SigningKey.es256()),
        rate_limit_address="1r/m",
        rate_limit_address_burst=3,
    )

    with gateway.client() as http:
        codes = statuses(http, 4, "GET", "/api/v1/courses")
        # Answers the gateway writes itself count too: 401, 404 and health.
        assert_too_many(http.get("/api/v1/enrollments"))
        assert_too_many(http.get("/no/such/route"))
        assert_too_many(http.get("/healthz"))

    assert codes == [200] * 4


@pytest.fixture
def per_user_gateway(start_gateway, upstream):
    key = SigningKey.es256()
    gateway = start_gateway(
        {"courses": upstream.address},
        jwks(key),
        rate_limit_user="1r/m",
        rate_limit_user_burst=2,
    )
    return gateway, key


def test_per_user_limit_is_keyed_on_the_verified_subject(per_user_gateway):
    gateway, key = per_user_gateway
    alice, bob = key.token(sub=str(uuid.uuid4())), key.token(sub=str(uuid.uuid4()))

    with gateway.client() as http:
        alice_codes = statuses(http, 3, "GET", "/api/v1/enrollments", headers=bearer(alice))
        alice_throttled = http.get("/api/v1/enrollments", headers=bearer(alice))
        # Same address, another verified user: a bucket of its own.
        bob_codes = statuses(http, 3, "GET", "/api/v1/enrollments", headers=bearer(bob))

    assert alice_codes == [200] * 3
    assert_too_many(alice_throttled)
    assert bob_codes == [200] * 3


def test_forged_subjects_share_the_address_bucket(per_user_gateway):
    gateway, _ = per_user_gateway
    forger = SigningKey.es256(kid="stolen-kid")

    def forged() -> dict[str, str]:
        # A fresh subject every time: if unverified subjects got buckets, none would fill.
        return bearer(forger.token(sub=str(uuid.uuid4())))

    with gateway.client() as http:
        codes = [http.get("/api/v1/enrollments", headers=forged()).status_code for _ in range(3)]
        throttled = http.get("/api/v1/enrollments", headers=forged())

    assert codes == [401] * 3
    assert_too_many(throttled)


def test_per_user_limit_does_not_apply_to_public_routes(per_user_gateway):
    gateway, _ = per_user_gateway

    with gateway.client() as http:
        codes = statuses(http, 5, "GET", "/api/v1/courses")

    assert codes == [200] * 5
