"""Access tokens at the gateway: what passes, what is refused, what the service sees."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.render import GATEWAY_DIR, prepare_workdir, write_keyfile
from gateway.tests.support import (
    AUDIENCE,
    Gateway,
    SigningKey,
    bearer,
    claims,
    gateway_settings,
    header_values,
    jwks,
)

PROTECTED = "/api/v1/enrollments"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict, payload: dict, signature: bytes = b"") -> str:
    segments = [b64url(json.dumps(part).encode()) for part in (header, payload)]
    return ".".join([*segments, b64url(signature)])


def assert_unauthorized(response: httpx.Response) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer ")
    body = response.json()
    assert body["status"] == 401
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


def probe_path() -> str:
    """A protected path no other test uses, to tell whether it reached the service."""
    return f"{PROTECTED}?probe={uuid.uuid4().hex}"


# ------------------------------------------------------------------------ accepted


def test_valid_token_reaches_service_with_verified_identity(client, es_key):
    sub = str(uuid.uuid4())
    token = es_key.token(sub=sub, email="ada@example.com", roles=["student", "instructor"])

    response = client.get(PROTECTED, headers=bearer(token))

    assert response.status_code == 200
    echo = response.json()
    assert header_values(echo, "x-user-id") == [sub]
    assert header_values(echo, "x-user-email") == ["ada@example.com"]
    assert header_values(echo, "x-user-roles") == ["student,instructor"]
    # Services verify the token again (defence in depth): it is forwarded as sent.
    assert header_values(echo, "authorization") == [f"Bearer {token}"]


def test_rs256_token_is_accepted(client, rs_key):
    sub = str(uuid.uuid4())
    response = client.get(PROTECTED, headers=bearer(rs_key.token(sub=sub)))

    assert response.status_code == 200
    assert header_values(response.json(), "x-user-id") == [sub]


def test_audience_list_containing_the_api_is_accepted(client, es_key):
    token = es_key.token(aud=["another-api", AUDIENCE])

    assert client.get(PROTECTED, headers=bearer(token)).status_code == 200


def test_token_without_roles_forwards_no_roles(client, es_key):
    response = client.get(PROTECTED, headers=bearer(es_key.token(roles=None)))

    assert response.status_code == 200
    assert header_values(response.json(), "x-user-roles") == []


# ------------------------------------------------------------------------ refused


def hs256_with_public_key_as_secret(key: SigningKey) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the published public key."""
    pem = key.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = ".".join(b64url(json.dumps(p).encode()) for p in (header, claims()))
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(key: SigningKey) -> str:
    header, _, signature = key.token().split(".")
    forged = b64url(json.dumps(claims(roles=["admin"])).encode())
    return f"{header}.{forged}.{signature}"


BAD_TOKENS: dict[str, Callable[[SigningKey, SigningKey], str]] = {
    "expired": lambda es, rs: es.token(exp=int(time.time()) - 120, iat=int(time.time()) - 600),
    "tampered payload": lambda es, rs: tampered(es),
    "wrong audience": lambda es, rs: es.token(aud="some-other-api"),
    "wrong issuer": lambda es, rs: es.token(iss="https://evil.example"),
    "unknown kid": lambda es, rs: SigningKey.es256(kid="not-published").token(),
    "key of another signer under a known kid": lambda es, rs: SigningKey.es256(kid=es.kid).token(),
    "alg none, no signature": lambda es, rs: unsigned_token(
        {"alg": "none", "kid": es.kid}, claims()
    ),
    "alg none with a signature": lambda es, rs: unsigned_token(
        {"alg": "none", "kid": es.kid}, claims(), b"x" * 64
    ),
    "HS256 signed with the public key": lambda es, rs: hs256_with_public_key_as_secret(es),
    "RS256 header on an ES256 key": lambda es, rs: SigningKey.rs256(kid=es.kid).token(),
    "ES256 header on an RS256 key": lambda es, rs: SigningKey.es256(kid=rs.kid).token(),
    "not valid yet": lambda es, rs: es.token(nbf=int(time.time()) + 600),
    "no expiry": lambda es, rs: es.token(exp=None),
    "subject with a separator": lambda es, rs: es.token(sub="a|b"),
    "role with a separator": lambda es, rs: es.token(roles=["student|admin"]),
    "email with a newline": lambda es, rs: es.token(email="a@b.c\r\nX-User-Id: evil"),
    "garbage": lambda es, rs: "not.a.token",
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_unacceptable_token_is_refused_before_the_service(client, upstream, es_key, rs_key, case):
    path = probe_path()

    response = client.get(path, headers=bearer(BAD_TOKENS[case](es_key, rs_key)))

    body = assert_unauthorized(response)
    assert "invalid_token" in response.headers["www-authenticate"]
    assert body["detail"]
    assert path not in upstream.paths_received()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic YWRhOnNlY3JldA=="}, {"Authorization": "Bearer"}],
    ids=["no header", "basic auth", "empty bearer"],
)
def test_protected_route_without_a_bearer_token_is_refused(client, upstream, headers):
    path = probe_path()

    assert_unauthorized(client.get(path, headers=headers))
    assert path not in upstream.paths_received()


def test_writes_to_the_catalog_need_a_token(client):
    assert_unauthorized(client.post("/api/v1/courses", json={"title": "x"}))


# ------------------------------------------------------------------- optional token


def test_catalog_is_public_without_a_token(client):
    response = client.get("/api/v1/courses?q=python")

    assert response.status_code == 200
    assert header_values(response.json(), "x-user-id") == []


def test_catalog_forwards_the_identity_of_a_valid_token(client, es_key):
    sub = str(uuid.uuid4())

    response = client.get("/api/v1/courses/intro", headers=bearer(es_key.token(sub=sub)))

    assert header_values(response.json(), "x-user-id") == [sub]


def test_catalog_refuses_an_invalid_token(client, es_key):
    token = es_key.token(exp=int(time.time()) - 120)

    assert_unauthorized(client.get("/api/v1/categories", headers=bearer(token)))


# --------------------------------------------------------------- identity headers

FORGED_IDENTITY = {
    "X-User-Id": "00000000-0000-0000-0000-000000000000",
    "x-user-email": "admin@unpuzzle.dev",
    "X-USER-ROLES": "admin",
    "X-Forwarded-User": "admin",
    "X-Auth-Request-Email": "admin@unpuzzle.dev",
    "Remote-User": "admin",
    "X_User_Id": "00000000-0000-0000-0000-000000000000",
}


def assert_no_forged_identity(echo: dict) -> None:
    received = {name for name, _ in echo["headers"]}
    for name, value in FORGED_IDENTITY.items():
        assert value not in header_values(echo, name), name
    assert not received & {"x-forwarded-user", "x-auth-request-email", "remote-user", "x_user_id"}


def test_client_identity_headers_never_reach_a_public_route(client):
    response = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": "x"}, headers=FORGED_IDENTITY
    )

    assert response.status_code == 200
    echo = response.json()
    assert_no_forged_identity(echo)
    assert header_values(echo, "x-user-id") == []


def test_client_identity_headers_are_replaced_by_the_verified_identity(client, es_key):
    sub = str(uuid.uuid4())
    headers = {**FORGED_IDENTITY, **bearer(es_key.token(sub=sub, roles=["student"]))}

    response = client.get(PROTECTED, headers=headers)

    echo = response.json()
    assert_no_forged_identity(echo)
    assert header_values(echo, "x-user-id") == [sub]
    assert header_values(echo, "x-user-roles") == ["student"]


def test_public_route_ignores_a_token_and_forwards_no_identity(client, es_key):
    response = client.post("/api/v1/auth/signout", headers=bearer(es_key.token()))

    assert response.status_code == 200
    assert header_values(response.json(), "x-user-id") == []


# ------------------------------------------------------------------- key rotation


@pytest.fixture
def restore_keys(gateway: Gateway) -> Iterator[None]:
    original = gateway.keys_file.read_bytes()
    yield
    gateway.keys_file.write_bytes(original)


@pytest.mark.usefixtures("restore_keys")
def test_key_rotation_takes_effect_without_reload(client, gateway, es_key):
    new_key = SigningKey.es256()
    old_token, new_token = es_key.token(), new_key.token()

    write_keyfile(gateway.keys_file, jwks(es_key, new_key))
    assert client.get(PROTECTED, headers=bearer(old_token)).status_code == 200
    assert client.get(PROTECTED, headers=bearer(new_token)).status_code == 200

    write_keyfile(gateway.keys_file, jwks(new_key))
    body = assert_unauthorized(client.get(PROTECTED, headers=bearer(old_token)))
    assert body["detail"] == "unknown signing key"
    assert client.get(PROTECTED, headers=bearer(new_token)).status_code == 200


@pytest.mark.usefixtures("restore_keys")
def test_missing_keys_file_refuses_tokens_but_keeps_public_routes(client, gateway, es_key):
    gateway.keys_file.unlink()

    body = assert_unauthorized(client.get(PROTECTED, headers=bearer(es_key.token())))
    assert body["detail"] == "token could not be verified"
    assert client.get("/api/v1/courses").status_code == 200


# ---------------------------------------------------------------- verification cost


def test_token_is_verified_once_per_request(tmp_path, upstream, es_key):
    # $jwt_identity feeds several maps, the rate-limit key and the log; njs 0.7.9 caches
    # a js_set value per request. This instance runs a copy of jwt.js that logs each call.
    js_dir = tmp_path / "js"
    js_dir.mkdir()
    for name in ("jwt.js", "responses.js"):
        shutil.copy(GATEWAY_DIR / name, js_dir / name)
    jwt_js = js_dir / "jwt.js"
    jwt_js.write_text(
        jwt_js.read_text().replace(
            "async function identity(r) {",
            "async function identity(r) {\n    ngx.log(ngx.WARN, 'identity evaluated');",
        )
    )
    settings = gateway_settings(tmp_path, {"courses": upstream.address})
    config = prepare_workdir(settings, tmp_path, jwks=jwks(es_key))
    config.write_text(re.sub(r"js_path \S+;", f"js_path {js_dir};", config.read_text()))
    gateway = Gateway(tmp_path, settings).start()
    try:
        with gateway.client() as http:
            for headers in (bearer(es_key.token()), bearer("a.b.c"), {}):
                http.get(PROTECTED, headers=headers)
            http.get("/api/v1/courses", headers=bearer(es_key.token()))
    finally:
        gateway.stop()

    assert gateway.error_log().count("identity evaluated") == 4
