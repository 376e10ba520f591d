"""The public keys that sign access tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from auth_service.api.deps import AuthContext, auth_context

router = APIRouter(prefix="/api/v1/auth", tags=["keys"])


@router.get("/.well-known/jwks.json")
async def jwks(ctx: AuthContext = Depends(auth_context)) -> JSONResponse:
    """Current, upcoming and recently retired public keys (JWK Set, RFC 7517)."""
    return JSONResponse(await ctx.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
