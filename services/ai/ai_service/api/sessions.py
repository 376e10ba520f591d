"""``/api/v1/ai/sessions``: tutor sessions and their messages (whole or streamed)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ai_service.api.deps import tutor_context
from ai_service.context import TutorContext
from ai_service.schemas import MessageCreate, MessageOut, SessionCreate, SessionOut
from ai_service.streaming import SSE_HEADERS, AnswerStream
from ai_service.tutor import begin_turn, create_session, list_messages, list_sessions, post_message
from unpuzzle_common.auth import Principal, current_principal
from unpuzzle_common.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/ai/sessions", tags=["ai sessions"])


@router.post("", status_code=201, response_model=SessionOut)
async def create(
    body: SessionCreate,
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> dict:
    return await create_session(ctx, principal, body)


@router.get("", response_model=Page[SessionOut])
async def mine(
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> Page:
    return await list_sessions(ctx, principal, params)


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "").lower()


@router.post(
    "/{session_id}/messages",
    status_code=201,
    response_model=MessageOut,
    responses={
        201: {
            "description": "The assistant's answer; with `Accept: text/event-stream`, a 200 "
            "stream of `token` events, then `done` with this message (or `error`).",
            "content": {"text/event-stream": {}},
        }
    },
)
async def post(
    session_id: uuid.UUID,
    body: MessageCreate,
    request: Request,
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
):
    if not _wants_stream(request):
        return await post_message(ctx, principal, session_id, body.content)
    # Checks, the limit and the stored question come first, so they answer with their
    # own status codes; only then does the stream start.
    turn = await begin_turn(ctx, principal, session_id, body.content)
    stream = AnswerStream(ctx, turn)
    return StreamingResponse(stream.events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/{session_id}/messages", response_model=Page[MessageOut])
async def messages(
    session_id: uuid.UUID,
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> Page:
    return await list_messages(ctx, principal, session_id, params)
