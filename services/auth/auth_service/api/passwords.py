"""Forgotten passwords: request a reset mail, reset with its token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from auth_service import password_resets
from auth_service.api.deps import AuthContext, auth_context
from auth_service.schemas import ForgotPasswordRequest, ResetPasswordRequest
from unpuzzle_common.db import transaction

router = APIRouter(prefix="/api/v1/auth/password", tags=["passwords"])


@router.post("/forgot", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(body: ForgotPasswordRequest, ctx: AuthContext = Depends(auth_context)):
    """Mail a reset link if the account exists. Always 202, so accounts cannot be probed."""
    async with transaction(ctx.sessions) as session:
        await password_resets.request_reset(
            session,
            ctx.redis,
            ctx.mailer,
            email=body.email,
            ttl=ctx.settings.password_reset_ttl,
            per_hour=ctx.settings.password_reset_per_hour,
            base_url=ctx.settings.public_base_url,
        )
    return {"status": "accepted", "detail": "If the account exists, a reset link is on its way."}


@router.post("/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(
    body: ResetPasswordRequest, ctx: AuthContext = Depends(auth_context)
) -> Response:
    """Set a new password with a reset token; every session of the account is signed out."""
    async with transaction(ctx.sessions) as session:
        await password_resets.reset_password(
            session, ctx.hashing, token=body.token, new_password=body.new_password
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
