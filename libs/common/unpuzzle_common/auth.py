"""Access-token verification for every service, and the principal it yields.

Services verify each request's JWT themselves (defence in depth behind the gateway)
against the auth service's JWKS. Keys are cached; an unknown ``kid`` triggers a
refresh (at most once per ``min_refresh_interval``) so rotated keys are picked up
without a restart. The algorithm is pinned to the key's, never taken from the token.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import Request
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from unpuzzle_common.errors import Forbidden, Unauthorized
from unpuzzle_common.observability import user_id_var

ADMIN = "admin"
INSTRUCTOR = "instructor"
STUDENT = "student"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    user_id: uuid.UUID
    email: str
    roles: frozenset[str]
    token_id: str
    #: The sign-in session the token belongs to, when the issuer records one.
    session_id: str | None = None

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles


@dataclass(frozen=True)
class VerificationKey:
    """A public key and the one algorithm tokens signed with it may use."""

    kid: str
    alg: str
    key: Any


def key_from_jwk(jwk: dict[str, Any]) -> VerificationKey:
    """Parse one JWK (EC P-256 → ES256, RSA → RS256) into a verification key."""
    kty = jwk.get("kty")
    if kty == "EC" and jwk.get("crv") == "P-256":
        alg, key = "ES256", ECAlgorithm.from_jwk(jwk)
    elif kty == "RSA":
        alg, key = "RS256", RSAAlgorithm.from_jwk(jwk)
    else:
        raise ValueError(f"unsupported key type {kty!r}")
    if jwk.get("alg", alg) != alg:
        raise ValueError(f"key {jwk.get('kid')} declares alg {jwk.get('alg')}, expected {alg}")
    return VerificationKey(kid=str(jwk["kid"]), alg=alg, key=key)


KeyLookup = Callable[[str], Awaitable[VerificationKey | None]]


class JWKSKeySource:
    """Keys fetched from a JWKS URL, cached for ``ttl`` seconds."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
        timeout: float = 3.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at = 0.0
        #: When a fetch was last tried, successful or not: the refresh rate limit counts
        #: failed fetches too, so an unreachable auth service is not asked on every request.
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Fetch the JWKS now and replace the cached keys."""
        response = await self._client.get(self.url)
        response.raise_for_status()
        keys = {}
        for jwk in response.json().get("keys", []):
            try:
                vk = key_from_jwk(jwk)
            except (ValueError, KeyError):
                continue
            keys[vk.kid] = vk
        self._keys = keys
        self._fetched_at = time.monotonic()

    def _may_refresh(self) -> bool:
        return (
            self._attempted_at is None
            or time.monotonic() - self._attempted_at >= self.min_refresh_interval
        )

    async def __call__(self, kid: str) -> VerificationKey | None:
        age = time.monotonic() - self._fetched_at
        if kid in self._keys and age < self.ttl:
            return self._keys[kid]
        # While a fetch is in flight, wait for it rather than answer "unknown key".
        if self._may_refresh() or self._lock.locked():
            async with self._lock:
                if self._may_refresh():  # not already done by the request we waited for
                    self._attempted_at = time.monotonic()
                    try:
                        await self.refresh()
                    except (httpx.HTTPError, ValueError):
                        pass  # keep serving the cached keys while auth is unreachable
        return self._keys.get(kid)

    async def aclose(self) -> None:
        await self._client.aclose()


class TokenVerifier:
    """Verifies access tokens: signature (alg pinned to the key), exp, iss, aud."""

    def __init__(self, keys: KeyLookup, *, issuer: str, audience: str, leeway: int = 5) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`Unauthorized` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The access token is malformed.") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("The access token has no key id.")
        key = await self._keys(kid)
        if key is None:
            raise Unauthorized("The access token was signed with an unknown key.")
        if header.get("alg") != key.alg:
            raise Unauthorized("The access token's algorithm does not match its key.")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                email=str(claims.get("email", "")),
                roles=_roles(claims.get("roles", [])),
                token_id=str(claims["jti"]),
                session_id=str(claims["sid"]) if claims.get("sid") else None,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The access token has expired.") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("The access token is not valid.") from exc


def _roles(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ValueError("roles must be a list of strings")
    return frozenset(value)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def optional_principal(request: Request) -> Principal | None:
    """FastAPI dependency: the caller when a token is sent (it must be valid), else None."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        return None
    principal = await request.app.state.token_verifier.verify(token)
    request.state.principal = principal
    user_id_var.set(str(principal.user_id))
    return principal


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller; 401 without a valid token."""
    principal = await optional_principal(request)
    if principal is None:
        raise Unauthorized()
    return principal


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency factory: the caller must hold one of ``roles`` (403 otherwise)."""
    wanted = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if not principal.roles & wanted:
            raise Forbidden(f"This action requires the role: {' or '.join(sorted(wanted))}.")
        return principal

    return dependency


def roles_claim(roles: Iterable[str]) -> list[str]:
    """Roles in the stable order tokens carry them."""
    return sorted(set(roles))
