"""A turn answered as server-sent events, stored whatever the client does.

The answer is produced by a background task, not by the response: the response only
relays what the task puts on a queue. So when the client disconnects mid-answer (the
response is cancelled), the task notices, stops asking the model, and stores the part
already streamed as an ``interrupted`` message; when the stream ends normally it stores
the whole message and the response ends with a ``done`` event carrying it.

Events (``data`` is JSON):

- ``token``: ``{"delta": "..."}``, a piece of the answer;
- ``done``: the stored assistant message (id, content, citations, tokens...);
- ``error``: a problem document (the model failed; a partly streamed answer is stored
  and its id given as ``message_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ai_service.answering import StreamOutcome
from ai_service.context import TutorContext
from ai_service.providers.base import ProviderError
from ai_service.schemas import MessageOut
from ai_service.tutor import COMPLETE, INTERRUPTED, Turn, finish_turn
from unpuzzle_common.errors import Problem

log = logging.getLogger(__name__)

#: Response headers of a stream: no caching, and no buffering by nginx in front of us.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class AnswerStream:
    """The background production of one streamed answer, and the events it emits."""

    def __init__(self, ctx: TutorContext, turn: Turn) -> None:
        self._ctx = ctx
        self._turn = turn
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._client_left = asyncio.Event()
        self.task = ctx.background.spawn(self._produce(), name=f"ai-stream:{turn.session['id']}")

    async def events(self) -> AsyncIterator[bytes]:
        """SSE bytes until ``done`` or ``error``; leaving early tells the producer."""
        try:
            while True:
                kind, data = await self._queue.get()
                yield sse(kind, data)
                if kind != "token":
                    return
        finally:
            self._client_left.set()

    async def _next_or_leave(self, pieces: AsyncIterator[str]) -> str | None:
        """The next piece, or None when the answer ended or the client left."""
        piece = asyncio.ensure_future(anext(pieces))
        left = asyncio.ensure_future(self._client_left.wait())
        try:
            await asyncio.wait({piece, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
        if not piece.done():
            piece.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await piece
            return None
        try:
            return piece.result()
        except StopAsyncIteration:
            return None

    async def _produce(self) -> None:
        try:
            await self._produce_and_store()
        except Exception:
            log.exception("streamed answer could not be completed")
            problem = Problem("The answer could not be completed; it has been logged.")
            problem.status, problem.slug = 500, "internal-error"
            self._queue.put_nowait(("error", problem.body()))

    async def _produce_and_store(self) -> None:
        ctx, turn = self._ctx, self._turn
        outcome = StreamOutcome()
        failure: Problem | None = None
        pieces = ctx.answering.stream(turn.request, outcome)
        try:
            while (piece := await self._next_or_leave(pieces)) is not None:
                self._queue.put_nowait(("token", {"delta": piece}))
        except Problem as problem:
            failure = problem  # before any text: nothing to store
        except ProviderError as exc:
            log.warning("stream broke after %d characters: %s", len(outcome.text), exc)
            failure = Problem("The AI model stopped answering mid-way.")
            failure.status, failure.slug = 502, "ai-model-stream-broken"
        finally:
            with contextlib.suppress(Exception):
                await pieces.aclose()
        if not outcome.text:
            await ctx.limiter.refund(turn.reservation)
            if failure is None:
                failure = Problem("The AI model gave an empty answer.")
                failure.status, failure.slug = 502, "ai-model-answer-invalid"
            self._queue.put_nowait(("error", failure.body()))
            return
        interrupted = failure is not None or self._client_left.is_set()
        message = await finish_turn(
            ctx, turn, outcome.completion(), status=INTERRUPTED if interrupted else COMPLETE
        )
        view = MessageOut.model_validate(message).model_dump(mode="json")
        if failure is not None:
            self._queue.put_nowait(("error", {**failure.body(), "message_id": view["id"]}))
        else:
            self._queue.put_nowait(("done", view))
