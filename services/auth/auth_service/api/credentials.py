"""Sign-up, sign-in, token refresh and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from auth_service import tokens, users
from auth_service.api.deps import AuthContext, auth_context, client_info
from auth_service.schemas import (
    AuthResult,
    RefreshRequest,
    SigninRequest,
    SignupRequest,
    Tokens,
    user_out,
)
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import Unauthorized

router = APIRouter(prefix="/api/v1/auth", tags=["credentials"])

INVALID_CREDENTIALS = "The email or password is incorrect."


@router.post("/signup", status_code=status.HTTP_201_CREATED, response_model=AuthResult)
async def signup(body: SignupRequest, request: Request, ctx: AuthContext = Depends(auth_context)):
    """Create an account and sign it in. 409 when the email is already registered."""
    async with transaction(ctx.sessions) as session:
        user = await users.register_user(
            session,
            ctx.hashing,
            email=body.email,
            password=body.password,
            full_name=body.full_name,
            roles=[body.role],
        )
        pair = await ctx.issuer.open_session(session, user, client_info(request))
    return AuthResult(
        user=user_out(user),
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/signin", response_model=AuthResult)
async def signin(body: SigninRequest, request: Request, ctx: AuthContext = Depends(auth_context)):
    """Exchange email and password for tokens. Unknown email and wrong password answer alike."""
    client = client_info(request)
    await ctx.throttle.check(body.email, client.ip_address)
    async with transaction(ctx.sessions) as session:
        user = await users.authenticate(
            session, ctx.hashing, email=body.email, password=body.password
        )
        if user is not None:
            pair = await ctx.issuer.open_session(session, user, client)
    if user is None:
        await ctx.throttle.failed(body.email, client.ip_address)
        raise Unauthorized(INVALID_CREDENTIALS)
    await ctx.throttle.succeeded(body.email, client.ip_address)
    return AuthResult(
        user=user_out(user),
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/refresh", response_model=Tokens)
async def refresh(body: RefreshRequest, ctx: AuthContext = Depends(auth_context)):
    """Spend a refresh token for a new pair. A spent token revokes its whole family."""
    async with transaction(ctx.sessions) as session:
        pair = await ctx.issuer.rotate(session, body.refresh_token)
    if pair is None:  # reuse detected; the revocation above is committed
        raise Unauthorized("This refresh token was already used; the session has been revoked.")
    return Tokens(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/signout", status_code=status.HTTP_204_NO_CONTENT)
async def signout(body: RefreshRequest, ctx: AuthContext = Depends(auth_context)) -> Response:
    """End the session the refresh token belongs to. Unknown tokens are ignored (204)."""
    async with transaction(ctx.sessions) as session:
        session_id = await tokens.session_of_refresh_token(session, body.refresh_token)
        if session_id is not None:
            await tokens.revoke_session(session, session_id, reason="signout")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
