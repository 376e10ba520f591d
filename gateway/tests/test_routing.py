"""Routing, public routes, CORS, headers, body limits and the gateway's own answers."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest

from gateway.tests.support import (
    SigningKey,
    bearer,
    free_port,
    header_values,
    jwks,
)


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


# ------------------------------------------------------------------------- routes

SERVICE_ROUTES = [
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/categories"),
    ("POST", "/api/v1/courses"),
    ("GET", "/api/v1/enrollments"),
    ("GET", "/api/v1/media"),
    ("PUT", "/api/v1/media/uploads/u1/chunks/0"),
    ("POST", "/api/v1/ai/sessions"),
    ("GET", "/api/v1/payments"),
    ("GET", "/api/v1/analytics/instructors/me"),
]


@pytest.mark.parametrize(("method", "path"), SERVICE_ROUTES)
def test_service_routes_are_proxied_with_the_path_unchanged(client, es_key, method, path):
    response = client.request(method, f"{path}?x=1", headers=bearer(es_key.token()), content=b"")

    assert response.status_code == 200
    assert response.json()["path"] == f"{path}?x=1"


PUBLIC_ROUTES = [
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/signin"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/signout"),
    ("POST", "/api/v1/auth/password/forgot"),
    ("POST", "/api/v1/auth/password/reset"),
    ("GET", "/api/v1/auth/.well-known/jwks.json"),
    ("GET", "/api/v1/courses"),
    ("HEAD", "/api/v1/courses/intro-to-python"),
    ("GET", "/api/v1/categories/1"),
    ("POST", "/api/v1/payments/webhooks/stripe"),
]


@pytest.mark.parametrize(("method", "path"), PUBLIC_ROUTES)
def test_public_routes_work_without_a_token(client, method, path):
    response = client.request(method, path, content=b"{}")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/metrics", "/healthz/", "/readyz", "/openapi.json", "/api/v1/unknown", "/api/v1/authx"],
)
def test_unrouted_paths_are_404_and_never_reach_a_service(client, upstream, es_key, path):
    response = client.get(path, headers=bearer(es_key.token()))

    assert_problem(response, 404)
    assert path not in upstream.paths_received()


def test_dot_segments_cannot_reach_service_internals(client, upstream):
    response = client.get("/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/metrics")

    assert_problem(response, 404)
    assert not [p for p in upstream.paths_received() if "metrics" in p]


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"],
    ids=["request line", "header line"],
)
def test_malformed_request_gets_a_problem_document(gateway, request_bytes):
    with socket.create_connection(("127.0.0.1", gateway.settings.listen_port), timeout=5) as conn:
        conn.sendall(request_bytes)
        head = conn.makefile("rb").read().decode(errors="replace")

    assert head.startswith("HTTP/1.1 400")
    assert "Content-Type: application/problem+json" in head


def test_gateway_health(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "gateway"}


def test_merged_openapi_and_docs_are_served(client):
    document = client.get("/api/v1/openapi.json")
    docs = client.get("/api/docs")

    assert document.status_code == 200
    assert list(document.json()["paths"]) == ["/api/v1/auth/signin"]
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in docs.text
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    init = client.get("/api/docs/swagger-init.js")
    assert init.headers["content-type"] == "application/javascript"


def test_unconfigured_service_answers_404(start_gateway, upstream, es_key):
    gateway = start_gateway({"auth": upstream.address}, jwks(es_key))

    with gateway.client() as http:
        assert_problem(http.get("/api/v1/ai/sessions", headers=bearer(es_key.token())), 404)
        assert_problem(http.get("/api/v1/courses"), 404)
        assert http.post("/api/v1/auth/signin", json={}).status_code == 200


def test_a_replicated_service_gets_requests_on_every_replica(start_gateway, es_key):
    from gateway.tests.support import EchoUpstream

    replicas = [EchoUpstream().start(), EchoUpstream().start()]
    try:
        gateway = start_gateway({"courses": " ".join(r.address for r in replicas)}, jwks(es_key))
        with gateway.client() as http:
            for _ in range(10):
                assert http.get("/api/v1/courses").status_code == 200
        assert all(r.paths_received() for r in replicas), "round robin reaches each replica"
        assert sum(len(r.paths_received()) for r in replicas) == 10
    finally:
        for replica in replicas:
            replica.stop()


# ---------------------------------------------------------------------- headers


def test_security_headers_on_every_response(client, es_key):
    for response in (client.get("/api/v1/courses"), client.get("/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_gateway_owns_headers_a_service_also_sets(client):
    response = client.get("/api/v1/courses", headers={"Origin": "https://evil.example"})

    # The echo upstream sends X-Request-ID and Access-Control-Allow-Origin: * itself.
    assert response.headers.get_list("x-request-id") != ["from-upstream"]
    assert len(response.headers.get_list("x-request-id")) == 1
    assert "access-control-allow-origin" not in response.headers


def test_sane_client_request_id_is_kept_and_forwarded(client):
    request_id = f"client-{uuid.uuid4()}"

    response = client.get("/api/v1/courses", headers={"X-Request-ID": request_id})

    assert response.headers["x-request-id"] == request_id
    assert header_values(response.json(), "x-request-id") == [request_id]


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "semi;colon", "<script>"])
def test_insane_client_request_id_is_replaced(client, bad):
    response = client.get("/api/v1/courses", headers={"X-Request-ID": bad})

    generated = response.headers["x-request-id"]
    assert generated != bad
    assert len(generated) == 32
    assert header_values(response.json(), "x-request-id") == [generated]


def test_access_log_is_json_with_request_and_user(client, gateway, es_key):
    sub, request_id = str(uuid.uuid4()), uuid.uuid4().hex
    headers = {**bearer(es_key.token(sub=sub)), "X-Request-ID": request_id}
    client.get("/api/v1/enrollments?secret=1", headers=headers)

    entry = gateway.access_log_entry(request_id)
    assert entry["user_id"] == sub
    assert entry["method"] == "GET"
    assert entry["uri"] == "/api/v1/enrollments"  # no query string: it may carry secrets
    assert entry["status"] == 200
    assert isinstance(entry["duration"], float)
    assert entry["upstream_time"]


# ------------------------------------------------------------------------- CORS


def test_preflight_from_an_allowed_origin(client, upstream):
    response = client.options(
        "/api/v1/courses",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    allowed = response.headers["access-control-allow-headers"]
    for header in ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert all(request["method"] != "OPTIONS" for request in upstream.requests)


def test_preflight_from_another_origin_gets_no_cors_grant(client):
    response = client.options(
        "/api/v1/courses",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 204
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-methods" not in response.headers


def test_cors_headers_on_responses_to_an_allowed_origin(client, es_key):
    response = client.get(
        "/api/v1/enrollments",
        headers={"Origin": "http://localhost:3000", **bearer(es_key.token())},
    )

    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    exposed = response.headers["access-control-expose-headers"]
    assert {"X-Request-ID", "Retry-After", "Idempotent-Replayed"} <= {
        h.strip() for h in exposed.split(",")
    }
    assert "access-control-allow-methods" not in response.headers


def test_401_carries_cors_headers_so_browsers_can_read_it(client):
    response = client.get("/api/v1/enrollments", headers={"Origin": "http://localhost:3000"})

    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


# ------------------------------------------------------------------- body limits


def test_body_over_the_default_limit_is_413(client, upstream, es_key):
    path = f"/api/v1/ai/sessions?probe={uuid.uuid4().hex}"

    response = client.post(path, headers=bearer(es_key.token()), content=b"x" * (1024 * 1024 + 1))

    assert_problem(response, 413)
    assert path not in upstream.paths_received()


def test_media_chunks_have_the_larger_limit(client, es_key):
    chunk = b"x" * (8 * 1024 * 1024)

    response = client.put(
        "/api/v1/media/uploads/u1/chunks/3", headers=bearer(es_key.token()), content=chunk
    )

    assert response.status_code == 200
    assert response.json()["body_bytes"] == len(chunk)


def test_media_chunk_over_its_limit_is_413(client, es_key):
    response = client.put(
        "/api/v1/media/uploads/u1/chunks/4",
        headers=bearer(es_key.token()),
        content=b"x" * (16 * 1024 * 1024 + 1),
    )

    assert_problem(response, 413)


def test_other_media_routes_keep_the_default_limit(client, es_key):
    response = client.post(
        "/api/v1/media/uploads", headers=bearer(es_key.token()), content=b"x" * (2 * 1024 * 1024)
    )

    assert_problem(response, 413)


# --------------------------------------------------------------- upstream errors


def test_service_errors_pass_through_untouched(client, es_key):
    response = client.get("/api/v1/ai/over-limit", headers=bearer(es_key.token()))

    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get_list("retry-after") == ["3600"]
    assert response.json()["path"] == "/api/v1/ai/over-limit"


@pytest.fixture(scope="module")
def flaky_gateway(start_gateway, upstream):
    key = SigningKey.es256()
    gateway = start_gateway(
        {"analytics": upstream.address, "payments": f"127.0.0.1:{free_port()}"},
        jwks(key),
        upstream_read_timeout="1s",
    )
    return gateway, key


def test_unreachable_service_is_502_problem(flaky_gateway):
    gateway, key = flaky_gateway
    with gateway.client() as http:
        response = http.get("/api/v1/payments", headers=bearer(key.token()))

    assert_problem(response, 502)


def test_slow_service_is_504_problem(flaky_gateway):
    gateway, key = flaky_gateway
    with gateway.client() as http:
        response = http.get("/api/v1/analytics/slow", headers=bearer(key.token()))

    assert_problem(response, 504)
