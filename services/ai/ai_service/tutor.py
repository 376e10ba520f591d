"""Tutor sessions and their messages: the chat side of the service.

A turn: the student's message is checked (session owner, course access, size), one
place of the daily limit is reserved, the student's message is stored, passages are
retrieved from the session's course, and the provider answers (whole, or streamed by
:mod:`ai_service.streaming`). The answer is stored with its citations, tokens and cost,
in the transaction that records the usage and its event. A failed answer gives the
reserved place back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.access import ensure_course_access
from ai_service.answering import cited
from ai_service.context import TutorContext
from ai_service.models import messages, tutor_sessions
from ai_service.prompts import SESSION_MODES, history_messages, material_message, student_message
from ai_service.providers.base import ChatMessage, Completion, ProviderRequest, estimate_tokens
from ai_service.retrieval import Passage, ground
from ai_service.schemas import SessionCreate
from ai_service.usage import Reservation, cost_micro_usd, daily_limit, record_usage
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import NotFound, ValidationFailed
from unpuzzle_common.pagination import Page, PageParams, make_page

COMPLETE, INTERRUPTED = "complete", "interrupted"


async def create_session(
    ctx: TutorContext, principal: Principal, body: SessionCreate
) -> dict[str, Any]:
    async with transaction(ctx.sessions) as session:
        if body.course_id is not None:
            await ensure_course_access(session, principal, body.course_id)
        now = datetime.now(UTC)
        row = {
            "id": uuid.uuid4(),
            "user_id": principal.user_id,
            "course_id": body.course_id,
            "lesson_id": body.lesson_id,
            "session_type": body.session_type,
            "created_at": now,
            "updated_at": now,
        }
        await session.execute(insert(tutor_sessions).values(**row))
    return row


async def list_sessions(
    ctx: TutorContext, principal: Principal, params: PageParams
) -> Page[dict[str, Any]]:
    """The caller's sessions, newest first."""
    t = tutor_sessions
    query = select(t).where(t.c.user_id == principal.user_id)
    if params.after:
        created = datetime.fromisoformat(params.after["c"])
        last = uuid.UUID(params.after["i"])
        query = query.where(
            or_(t.c.created_at < created, and_(t.c.created_at == created, t.c.id < last))
        )
    query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(params.limit + 1)
    async with ctx.sessions() as session:
        rows = [dict(r._mapping) for r in await session.execute(query)]
    return make_page(rows, params, lambda r: {"c": r["created_at"].isoformat(), "i": str(r["id"])})


async def owned_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> dict[str, Any]:
    """The caller's session; 404 for anyone else's (its existence is not revealed)."""
    row = (
        await session.execute(
            select(tutor_sessions).where(
                tutor_sessions.c.id == session_id, tutor_sessions.c.user_id == principal.user_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("No such tutor session.")
    return dict(row._mapping)


async def list_messages(
    ctx: TutorContext, principal: Principal, session_id: uuid.UUID, params: PageParams
) -> Page[dict[str, Any]]:
    """A session's messages, oldest first."""
    m = messages
    async with ctx.sessions() as session:
        await owned_session(session, principal, session_id)
        query = select(m).where(m.c.session_id == session_id)
        if params.after:
            created = datetime.fromisoformat(params.after["c"])
            last = uuid.UUID(params.after["i"])
            query = query.where(
                or_(m.c.created_at > created, and_(m.c.created_at == created, m.c.id > last))
            )
        query = query.order_by(m.c.created_at, m.c.id).limit(params.limit + 1)
        rows = [message_view(r._mapping) for r in await session.execute(query)]
    return make_page(rows, params, lambda r: {"c": r["created_at"].isoformat(), "i": str(r["id"])})


def message_view(row: Any) -> dict[str, Any]:
    view = dict(row)
    view["offline"] = row["provider"] == "offline"
    return view


@dataclass
class Turn:
    """A student's message accepted and its answer about to be made."""

    principal: Principal
    session: dict[str, Any]
    reservation: Reservation
    request: ProviderRequest
    passages: list[Passage]
    prompt_version: str


async def begin_turn(
    ctx: TutorContext, principal: Principal, session_id: uuid.UUID, content: str
) -> Turn:
    """Check, reserve, store the student's message and prepare the provider request.

    Raises 404 (not the caller's session), 403/404 (course access), 422 (too long) or
    429 (daily limit) before anything is stored.
    """
    settings = ctx.settings
    if len(content) > settings.max_message_chars:
        raise ValidationFailed.field("content", f"at most {settings.max_message_chars} characters")
    async with ctx.sessions() as session:
        tutor_session = await owned_session(session, principal, session_id)
        course_id = tutor_session["course_id"]
        if course_id is not None:
            await ensure_course_access(session, principal, course_id)
        limit = await daily_limit(session, principal.user_id, free_limit=settings.free_daily_limit)
    reservation = await ctx.limiter.reserve(principal.user_id, limit=limit)
    try:
        async with transaction(ctx.sessions) as session:
            history = await _recent_turns(session, session_id, settings.history_messages)
            await session.execute(
                insert(messages).values(
                    id=uuid.uuid4(),
                    session_id=session_id,
                    role="user",
                    content=content,
                    citations=[],
                    tokens=estimate_tokens(content),
                )
            )
            passages: list[Passage] = []
            if course_id is not None:
                passages = await ground(
                    session,
                    course_id=course_id,
                    query=content,
                    limit=settings.passages_per_answer,
                    lesson_id=tutor_session["lesson_id"],
                )
    except Exception:
        await ctx.limiter.refund(reservation)
        raise
    template = ctx.answering.prompts.get("chat")
    chat: list[ChatMessage] = [
        ChatMessage("system", template.render(mode=SESSION_MODES[tutor_session["session_type"]])),
    ]
    if course_id is not None:
        chat.append(material_message(passages))
    chat += history_messages(history)
    chat.append(student_message(content))
    request = ProviderRequest(
        task="chat",
        messages=chat,
        passages=passages,
        question=content,
        max_tokens=settings.max_answer_tokens,
    )
    return Turn(principal, tutor_session, reservation, request, passages, template.id)


async def _recent_turns(
    session: AsyncSession, session_id: uuid.UUID, count: int
) -> list[tuple[Any, str]]:
    if count <= 0:
        return []
    rows = await session.execute(
        select(messages.c.role, messages.c.content)
        .where(messages.c.session_id == session_id)
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(count)
    )
    return [(r.role, r.content) for r in reversed(rows.all())]


async def finish_turn(
    ctx: TutorContext, turn: Turn, completion: Completion, *, status: str = COMPLETE
) -> dict[str, Any]:
    """Store the answer, record its usage (row + event) and count it in Redis."""
    cost = cost_micro_usd(
        ctx.settings.prices,
        completion.model,
        completion.prompt_tokens,
        completion.completion_tokens,
    )
    row = {
        "id": uuid.uuid4(),
        "session_id": turn.session["id"],
        "role": "assistant",
        "content": completion.text,
        "citations": [p.citation() for p in cited(completion.text, turn.passages)],
        "tokens": completion.tokens,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "cost_micro_usd": cost,
        "status": status,
        "provider": completion.provider,
        "model": completion.model,
        "prompt_version": turn.prompt_version,
        "created_at": datetime.now(UTC),
    }
    async with transaction(ctx.sessions) as session:
        await session.execute(insert(messages).values(**row))
        await session.execute(
            update(tutor_sessions)
            .where(tutor_sessions.c.id == turn.session["id"])
            .values(updated_at=row["created_at"])
        )
        await record_usage(
            session,
            user_id=turn.principal.user_id,
            day=turn.reservation.day,
            tokens=completion.tokens,
            cost=cost,
            agent=turn.session["session_type"],
        )
    await ctx.limiter.add(turn.reservation, tokens=completion.tokens, cost=cost)
    return message_view(row)


async def post_message(
    ctx: TutorContext, principal: Principal, session_id: uuid.UUID, content: str
) -> dict[str, Any]:
    """One whole turn: the stored assistant message."""
    turn = await begin_turn(ctx, principal, session_id, content)
    try:
        completion = await ctx.answering.complete(turn.request)
    except Exception:
        await ctx.limiter.refund(turn.reservation)
        raise
    return await finish_turn(ctx, turn, completion)
