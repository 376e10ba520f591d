"""What the routers take from the running service."""

from __future__ import annotations

from fastapi import Request

from ai_service.context import TutorContext


async def tutor_context(request: Request) -> TutorContext:
    return request.app.state.tutor
