"""The caller's own profile, and role assignment by admins."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from auth_service import users
from auth_service.api.deps import AuthContext, auth_context
from auth_service.schemas import ProfileUpdate, RolesUpdate, User, user_out
from unpuzzle_common.auth import ADMIN, Principal, current_principal, require_roles
from unpuzzle_common.db import transaction

router = APIRouter(prefix="/api/v1/auth", tags=["profile"])


@router.get("/me", response_model=User)
async def read_me(
    principal: Principal = Depends(current_principal), ctx: AuthContext = Depends(auth_context)
):
    async with ctx.sessions() as session:
        return user_out(await users.get_user(session, principal.user_id))


@router.patch("/me", response_model=User)
async def update_me(
    body: ProfileUpdate,
    principal: Principal = Depends(current_principal),
    ctx: AuthContext = Depends(auth_context),
):
    """Change full_name, bio (sanitised HTML) or avatar_url. Absent fields stay as they are."""
    changes = body.model_dump(exclude_unset=True)
    if "avatar_url" in changes and changes["avatar_url"] is not None:
        changes["avatar_url"] = str(changes["avatar_url"])
    if "full_name" in changes and changes["full_name"] is None:
        del changes["full_name"]
    if "bio" in changes and changes["bio"] is None:
        changes["bio"] = ""
    async with transaction(ctx.sessions) as session:
        return user_out(await users.update_profile(session, principal.user_id, changes))


@router.put("/users/{user_id}/roles", response_model=User)
async def put_roles(
    user_id: uuid.UUID,
    body: RolesUpdate,
    _admin: Principal = Depends(require_roles(ADMIN)),
    ctx: AuthContext = Depends(auth_context),
):
    """Replace a user's roles (admin). Takes effect in the user's next access token."""
    async with transaction(ctx.sessions) as session:
        row = await users.set_roles(session, user_id, body.roles)
        return user_out(row)
