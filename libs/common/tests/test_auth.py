"""Token verification against a real JWKS endpoint, and the role dependencies.

The JWKS is served over real HTTP by a small server in a thread (it stands in for the
auth service's ``/.well-known/jwks.json``); the server counts how often it is asked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from jwt.algorithms import ECAlgorithm

from unpuzzle_common.auth import (
    ADMIN,
    INSTRUCTOR,
    STUDENT,
    JWKSKeySource,
    Principal,
    TokenVerifier,
    current_principal,
    require_roles,
)
from unpuzzle_common.errors import PROBLEM_JSON, Unauthorized, install_problem_handlers

ISSUER = "unpuzzle-auth"
AUDIENCE = "unpuzzle-api"


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(f"k-{uuid.uuid4().hex[:8]}", ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> dict[str, Any]:
        jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class JWKSState:
    """What the JWKS server answers, and how often it was asked."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class JWKSServer:
    url: str
    state: JWKSState

    def serve(self, *keys: SigningKey) -> None:
        self.state.keys = [k.jwk for k in keys]

    @property
    def hits(self) -> int:
        with self.state.lock:
            return self.state.hits


@pytest.fixture(scope="module")
def jwks_http() -> Iterator[tuple[str, Callable[[JWKSState], None]]]:
    """One real HTTP server for the module; each test installs its own state."""
    current: dict[str, JWKSState] = {"state": JWKSState()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = current["state"]
            with state.lock:
                state.hits += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield url, lambda state: current.__setitem__("state", state)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def jwks(jwks_http, signing_key: SigningKey) -> JWKSServer:
    url, install = jwks_http
    state = JWKSState()
    install(state)
    server = JWKSServer(url, state)
    server.serve(signing_key)
    return server


@pytest.fixture
async def key_source_for(jwks: JWKSServer) -> AsyncIterator[Callable[..., JWKSKeySource]]:
    sources: list[JWKSKeySource] = []

    def make(**options: Any) -> JWKSKeySource:
        source = JWKSKeySource(jwks.url, **options)
        sources.append(source)
        return source

    yield make
    for source in sources:
        await source.aclose()


@pytest.fixture
def verifier_for(key_source_for) -> Callable[..., TokenVerifier]:
    def make(**options: Any) -> TokenVerifier:
        return TokenVerifier(key_source_for(**options), issuer=ISSUER, audience=AUDIENCE)

    return make


@pytest.fixture
def verifier(verifier_for) -> TokenVerifier:
    return verifier_for()


USER_ID = uuid.UUID("0b7e5c1e-5c1e-4c1e-8c1e-5c1e5c1e5c1e")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": str(USER_ID),
        "email": "ada@example.com",
        "roles": [STUDENT],
        "iat": now,
        "exp": now + 900,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return base


def sign(key: SigningKey, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key.private, algorithm="ES256", headers={"kid": key.kid})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


async def test_valid_es256_token_yields_the_principal(
    verifier: TokenVerifier, signing_key: SigningKey
) -> None:
    token = sign(signing_key, roles=[INSTRUCTOR, STUDENT], sid="session-7")

    principal = await verifier.verify(token)

    assert principal == Principal(
        user_id=USER_ID,
        email="ada@example.com",
        roles=frozenset({INSTRUCTOR, STUDENT}),
        token_id=principal.token_id,
        session_id="session-7",
    )
    assert principal.has_role(INSTRUCTOR)
    assert not principal.is_admin


async def test_expired_token_is_refused(verifier: TokenVerifier, signing_key: SigningKey) -> None:
    past = int(time.time()) - 3600
    token = sign(signing_key, iat=past - 900, exp=past)

    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(token)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "another-api"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"sub": "not-a-uuid"}, id="subject-not-a-user-id"),
    ],
)
async def test_token_with_wrong_claims_is_refused(
    verifier: TokenVerifier, signing_key: SigningKey, overrides: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(sign(signing_key, **overrides))


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub", "jti"])
async def test_token_missing_a_required_claim_is_refused(
    verifier: TokenVerifier, signing_key: SigningKey, missing: str
) -> None:
    body = claims()
    del body[missing]
    token = jwt.encode(
        body, signing_key.private, algorithm="ES256", headers={"kid": signing_key.kid}
    )

    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_token_signed_with_an_unknown_key_is_refused(verifier: TokenVerifier) -> None:
    stranger = SigningKey.generate()

    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(sign(stranger))


async def test_token_signed_by_another_key_under_a_known_kid_is_refused(
    verifier: TokenVerifier, signing_key: SigningKey
) -> None:
    impostor = SigningKey(signing_key.kid, ec.generate_private_key(ec.SECP256R1()))

    with pytest.raises(Unauthorized):
        await verifier.verify(sign(impostor))


async def test_tampered_token_is_refused(verifier: TokenVerifier, signing_key: SigningKey) -> None:
    header, _, signature = sign(signing_key).split(".")
    promoted = b64json(claims(roles=[ADMIN]))

    with pytest.raises(Unauthorized):
        await verifier.verify(f"{header}.{promoted}.{signature}")


async def test_unsigned_alg_none_token_is_refused(
    verifier: TokenVerifier, signing_key: SigningKey
) -> None:
    token = f"{b64json({'alg': 'none', 'typ': 'JWT', 'kid': signing_key.kid})}.{b64json(claims())}."

    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_hs256_token_keyed_with_the_public_key_pem_is_refused(
    verifier: TokenVerifier, signing_key: SigningKey
) -> None:
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': signing_key.kid})}."
    signing_input += b64json(claims(roles=[ADMIN]))
    mac = hmac.new(signing_key.public_pem, signing_input.encode(), hashlib.sha256).digest()

    with pytest.raises(Unauthorized):
        await verifier.verify(f"{signing_input}.{b64url(mac)}")


async def test_rs256_header_on_an_ec_key_is_refused(
    verifier: TokenVerifier, signing_key: SigningKey
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": signing_key.kid})

    with pytest.raises(Unauthorized, match="algorithm"):
        await verifier.verify(token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "...."])
async def test_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_rotated_in_key_is_fetched_on_its_first_unknown_kid(
    jwks: JWKSServer, verifier_for, signing_key: SigningKey
) -> None:
    verifier = verifier_for(min_refresh_interval=0)
    await verifier.verify(sign(signing_key))
    rotated = SigningKey.generate()
    jwks.serve(signing_key, rotated)

    principal = await verifier.verify(sign(rotated))

    assert principal.user_id == USER_ID
    assert jwks.hits == 2
    # The old key stays valid for as long as the JWKS still lists it.
    assert (await verifier.verify(sign(signing_key))).user_id == USER_ID


async def test_retired_key_is_refused_once_the_jwks_drops_it(
    jwks: JWKSServer, verifier_for, signing_key: SigningKey
) -> None:
    verifier = verifier_for(ttl=0, min_refresh_interval=0)
    old_token = sign(signing_key)
    await verifier.verify(old_token)
    jwks.serve(SigningKey.generate())

    with pytest.raises(Unauthorized):
        await verifier.verify(old_token)


async def test_known_keys_are_cached_between_verifications(
    jwks: JWKSServer, verifier: TokenVerifier, signing_key: SigningKey
) -> None:
    for _ in range(5):
        await verifier.verify(sign(signing_key))

    assert jwks.hits == 1


async def test_concurrent_first_requests_share_one_fetch(
    jwks: JWKSServer, verifier_for, signing_key: SigningKey
) -> None:
    verifier = verifier_for(min_refresh_interval=5)
    tokens = [sign(signing_key) for _ in range(10)]

    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))

    assert {p.user_id for p in principals} == {USER_ID}
    assert jwks.hits == 1


async def test_refresh_on_unknown_kid_is_rate_limited(
    jwks: JWKSServer, verifier_for, signing_key: SigningKey
) -> None:
    verifier = verifier_for(min_refresh_interval=0.5)
    await verifier.verify(sign(signing_key))
    strangers = [sign(SigningKey.generate()) for _ in range(5)]

    for token in strangers:
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
    assert jwks.hits == 1

    await asyncio.sleep(0.55)
    with pytest.raises(Unauthorized):
        await verifier.verify(strangers[0])
    assert jwks.hits == 2


async def test_unreachable_jwks_is_not_asked_again_on_every_request(
    jwks: JWKSServer, verifier_for, signing_key: SigningKey
) -> None:
    jwks.state.status = 503
    verifier = verifier_for(min_refresh_interval=60)

    for _ in range(5):
        with pytest.raises(Unauthorized):
            await verifier.verify(sign(signing_key))

    assert jwks.hits == 1


async def test_keys_are_fetched_once_jwks_recovers(
    jwks: JWKSServer, verifier_for, signing_key: SigningKey
) -> None:
    jwks.state.status = 503
    verifier = verifier_for(min_refresh_interval=0.2)
    with pytest.raises(Unauthorized):
        await verifier.verify(sign(signing_key))
    jwks.state.status = 200

    await asyncio.sleep(0.25)

    assert (await verifier.verify(sign(signing_key))).user_id == USER_ID


# --- role dependencies -----------------------------------------------------------


@pytest.fixture
def roles_client(client_for, verifier: TokenVerifier):
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/admin/reports")
    async def reports(principal: Principal = Depends(require_roles(ADMIN))) -> dict:
        return {"user_id": str(principal.user_id)}

    @app.get("/me")
    async def me(principal: Principal = Depends(current_principal)) -> dict:
        return {"email": principal.email}

    return client_for(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_required_role_lets_its_holder_through(roles_client, signing_key) -> None:
    response = await roles_client.get(
        "/admin/reports", headers=bearer(sign(signing_key, roles=[ADMIN]))
    )

    assert response.status_code == 200
    assert response.json() == {"user_id": str(USER_ID)}


async def test_wrong_role_is_403_problem(roles_client, signing_key) -> None:
    response = await roles_client.get(
        "/admin/reports", headers=bearer(sign(signing_key, roles=[STUDENT, INSTRUCTOR]))
    )

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "admin" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Basic YWRhOnB3"}, id="basic-scheme"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
    ],
)
async def test_missing_token_is_401_problem(roles_client, headers: dict[str, str]) -> None:
    response = await roles_client.get("/admin/reports", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"] == "Bearer"


async def test_invalid_token_is_401_not_403(roles_client, signing_key) -> None:
    expired = sign(signing_key, roles=[ADMIN], exp=int(time.time()) - 3600)

    response = await roles_client.get("/admin/reports", headers=bearer(expired))

    assert response.status_code == 401


async def test_current_principal_needs_a_valid_token(roles_client, signing_key) -> None:
    anonymous = await roles_client.get("/me")
    signed_in = await roles_client.get("/me", headers=bearer(sign(signing_key)))

    assert anonymous.status_code == 401
    assert signed_in.json() == {"email": "ada@example.com"}
