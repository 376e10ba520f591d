"""``Idempotency-Key`` for POSTs that create or charge.

The same key and body from the same caller within the retention period (24 h)
replays the first answer (status, body, ``Location``) with ``Idempotent-Replayed:
true``; the same key with a different body is a 422; a retry that arrives while the
first request is still running is a 409. Only answers below 500 are kept, so a
request that failed on our side can be retried for real.

Keys are scoped by the caller: the verified user id when a valid token is sent,
otherwise the anonymous scope. Records live in Redis.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from unpuzzle_common.errors import Conflict, Problem, ServiceUnavailable, ValidationFailed
from unpuzzle_common.observability import scope_header

log = logging.getLogger("unpuzzle.idempotency")

RETENTION_SECONDS = 24 * 3600
IN_FLIGHT_SECONDS = 60
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_REPLAYED_HEADERS = {b"content-type", b"location"}
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

ScopeResolver = Callable[[Scope], Awaitable[str]]


class IdempotencyMiddleware:
    """Pure ASGI middleware applying the rules above to every POST carrying the header."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        redis: Callable[[], Redis],
        caller_scope: ScopeResolver,
    ) -> None:
        self.app = app
        self.service = service
        self.redis = redis
        self.caller_scope = caller_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = scope_header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(key, scope, receive, send)
        except Problem as problem:
            await _send_problem(send, problem)
        except RedisError:
            # Without the record we cannot promise "at most once": refuse rather than
            # risk running a charge or an enrollment twice; the client retries.
            log.warning("Idempotency-Key refused: Redis is unreachable", exc_info=True)
            await _send_problem(
                send,
                ServiceUnavailable(
                    "Requests with an Idempotency-Key cannot be checked right now; retry.",
                    headers={"Retry-After": "2"},
                ),
            )

    async def _handle(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        if not _KEY.match(key):
            raise ValidationFailed.field(
                "Idempotency-Key", "must be 1-255 visible ASCII characters"
            )
        body, more = await _read_body(receive)
        fingerprint = hashlib.sha256(
            b"\n".join([scope["path"].encode(), scope.get("query_string", b""), body])
        ).hexdigest()
        caller = await self.caller_scope(scope)
        record_key = f"idem:{self.service}:{caller}:{hashlib.sha256(key.encode()).hexdigest()}"
        lock_key = record_key + ":lock"
        redis = self.redis()

        stored = await redis.get(record_key)
        if stored is not None:
            await _replay(json.loads(stored), fingerprint, send)
            return
        lock_token = uuid.uuid4().hex
        if not await redis.set(lock_key, lock_token, nx=True, ex=IN_FLIGHT_SECONDS):
            raise Conflict("A request with this Idempotency-Key is still being processed.")
        try:
            # The first request may have stored its answer and released the lock between
            # our lookup above and taking the lock: look again before running twice.
            stored = await redis.get(record_key)
            if stored is not None:
                await _replay(json.loads(stored), fingerprint, send)
                return
            captured = await self._run(scope, body, more, send)
            if captured["status"] < 500:
                captured["fingerprint"] = fingerprint
                await self._after_response(
                    redis.set(record_key, json.dumps(captured), ex=RETENTION_SECONDS)
                )
        finally:
            # Release only our own lock: a request slower than the lock's expiry must
            # not remove the lock a later request holds now.
            await self._after_response(redis.eval(_RELEASE_LOCK, 1, lock_key, lock_token))

    @staticmethod
    async def _after_response(call: Awaitable[object]) -> None:
        # The answer has been sent: a Redis failure now can only be logged (the
        # record is lost, so a retry would run again; the lock expires by itself).
        try:
            await call
        except RedisError:
            log.warning("could not store an idempotent answer: Redis is unreachable")

    async def _run(self, scope: Scope, body: bytes, more: Receive, send: Send) -> dict:
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await more()

        captured: dict = {"status": 500, "headers": [], "body": ""}
        chunks: list[bytes] = []

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in message.get("headers", [])
                    if k.lower() in _REPLAYED_HEADERS
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay_receive, capture_send)
        captured["body"] = base64.b64encode(b"".join(chunks)).decode()
        return captured


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts), receive


async def _replay(record: dict, fingerprint: str, send: Send) -> None:
    if record["fingerprint"] != fingerprint:
        raise ValidationFailed.field(
            "Idempotency-Key", "this key was already used with a different request body"
        )
    body = base64.b64decode(record["body"])
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
    headers += [(b"idempotent-replayed", b"true"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": record["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_problem(send: Send, problem: Problem) -> None:
    body = json.dumps(problem.body()).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
