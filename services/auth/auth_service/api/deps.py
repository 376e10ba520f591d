"""What the routers take from the running service."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.mailer import Mailer
from auth_service.passwords import PasswordHashing
from auth_service.settings import Settings
from auth_service.signing_keys import KeyRing
from auth_service.throttle import SigninThrottle
from auth_service.tokens import ClientInfo, TokenIssuer


@dataclass
class AuthContext:
    """Everything the auth routes need, built once in the app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    hashing: PasswordHashing
    keys: KeyRing
    issuer: TokenIssuer
    throttle: SigninThrottle
    mailer: Mailer


async def auth_context(request: Request) -> AuthContext:
    return request.app.state.auth


def client_info(request: Request) -> ClientInfo:
    # Behind the gateway the client's address arrives in X-Real-IP (set by nginx,
    # never by the client: the gateway overwrites it).
    address = request.headers.get("x-real-ip") or (request.client.host if request.client else "")
    return ClientInfo(user_agent=request.headers.get("user-agent", ""), ip_address=address)
