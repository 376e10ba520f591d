"""The caller's sessions (signed-in devices) and their revocation."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import select

from auth_service import tokens
from auth_service.api.deps import AuthContext, auth_context
from auth_service.models import sessions as sessions_table
from auth_service.schemas import Session, SessionList
from unpuzzle_common.auth import Principal, current_principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import NotFound

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])


@router.get("/sessions", response_model=SessionList)
async def list_sessions(
    principal: Principal = Depends(current_principal),
    ctx: AuthContext = Depends(auth_context),
):
    """Active sessions of the caller, most recently used first."""
    current = principal.session_id
    async with ctx.sessions() as session:
        rows = await tokens.active_sessions(session, principal.user_id)
    return SessionList(
        items=[
            Session.model_validate({**row._mapping, "current": str(row.id) == current})
            for row in rows
        ]
    )


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: AuthContext = Depends(auth_context),
) -> Response:
    """Sign one of the caller's sessions out. 404 when it is not the caller's."""
    async with transaction(ctx.sessions) as session:
        owner = await session.scalar(
            select(sessions_table.c.user_id).where(sessions_table.c.id == session_id)
        )
        if owner != principal.user_id:
            raise NotFound("No such session.")
        await tokens.revoke_session(session, session_id, reason="revoked_by_user")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
