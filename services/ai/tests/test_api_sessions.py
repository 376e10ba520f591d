"""Sessions and messages over HTTP: access, grounded answers, streaming, disconnects."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import httpx
import uvicorn
from sqlalchemy import select

from ai_service.models import messages as messages_table
from ai_service.providers.base import Completion, Delta, ProviderRequest


async def _session(client, auth, user_id, **body) -> dict:
    response = await client.post("/api/v1/ai/sessions", json=body, headers=auth(user_id))
    assert response.status_code == 201, response.text
    return response.json()


async def test_enrolled_student_gets_a_grounded_answer_with_citations(client, auth, course):
    session = await _session(
        client, auth, course.student_id, course_id=str(course.course_id), session_type="chat"
    )
    response = await client.post(
        f"/api/v1/ai/sessions/{session['id']}/messages",
        json={"content": "Where does photosynthesis take place?"},
        headers=auth(course.student_id),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["role"] == "assistant"
    assert answer["offline"] is True and "Offline" in answer["content"]
    assert "chloroplasts" in answer["content"]
    assert answer["tokens"] > 0
    assert answer["citations"][0]["lesson_id"] == str(course.photosynthesis)
    assert {"id", "content", "citations", "tokens"} <= answer.keys()

    listed = await client.get(
        f"/api/v1/ai/sessions/{session['id']}/messages", headers=auth(course.student_id)
    )
    assert [m["role"] for m in listed.json()["items"]] == ["user", "assistant"]
    assert listed.json()["items"][1]["id"] == answer["id"]


async def test_student_not_enrolled_is_refused_403_on_a_published_course(client, auth, course):
    response = await client.post(
        "/api/v1/ai/sessions",
        json={"course_id": str(course.course_id), "session_type": "hint"},
        headers=auth(uuid.uuid4()),
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_course_is_404_but_its_instructor_and_admins_are_let_in(client, auth, course):
    response = await client.post(
        "/api/v1/ai/sessions", json={"course_id": str(uuid.uuid4())}, headers=auth(uuid.uuid4())
    )
    assert response.status_code == 404
    await _session(client, auth, course.instructor_id, course_id=str(course.course_id))
    admin = await client.post(
        "/api/v1/ai/sessions",
        json={"course_id": str(course.course_id)},
        headers=auth(uuid.uuid4(), "admin"),
    )
    assert admin.status_code == 201


async def test_course_grounded_session_types_need_a_course(client, auth):
    response = await client.post(
        "/api/v1/ai/sessions", json={"session_type": "quiz"}, headers=auth(uuid.uuid4())
    )
    assert response.status_code == 422
    general = await client.post("/api/v1/ai/sessions", json={}, headers=auth(uuid.uuid4()))
    assert general.status_code == 201 and general.json()["session_type"] == "chat"


async def test_someone_elses_session_is_404_and_sessions_are_listed_newest_first(
    client, auth, course
):
    first = await _session(client, auth, course.student_id, course_id=str(course.course_id))
    second = await _session(client, auth, course.student_id)
    stranger = await client.get(
        f"/api/v1/ai/sessions/{first['id']}/messages", headers=auth(uuid.uuid4())
    )
    assert stranger.status_code == 404
    page = await client.get("/api/v1/ai/sessions?limit=1", headers=auth(course.student_id))
    assert [s["id"] for s in page.json()["items"]] == [second["id"]]
    rest = await client.get(
        f"/api/v1/ai/sessions?limit=1&cursor={page.json()['next_cursor']}",
        headers=auth(course.student_id),
    )
    assert [s["id"] for s in rest.json()["items"]] == [first["id"]]


async def test_unauthenticated_calls_are_401(client):
    assert (await client.get("/api/v1/ai/sessions")).status_code == 401


def parse_sse(raw: str) -> list[tuple[str, dict]]:
    events = []
    for block in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_sse_streams_tokens_then_done_and_the_message_is_stored(
    client, auth, course, ctx, openai_provider, fake_openai
):
    ctx.answering.provider = openai_provider()
    session = await _session(client, auth, course.student_id, course_id=str(course.course_id))
    response = await client.post(
        f"/api/v1/ai/sessions/{session['id']}/messages",
        json={"content": "Where is chlorophyll?"},
        headers={**auth(course.student_id), "Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    events = parse_sse(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) > 3
    streamed = "".join(data["delta"] for kind, data in events if kind == "token")
    done = events[-1][1]
    assert done["content"] == streamed and done["status"] == "complete"
    assert done["citations"] and done["tokens"] > 0 and done["offline"] is False
    # The model was given the course material and the question in separate messages.
    sent = fake_openai.requests[0]["messages"]
    assert sent[0]["role"] == "system" and "chloroplasts" not in sent[0]["content"]
    assert "COURSE_MATERIAL" in sent[1]["content"] and "chloroplasts" in sent[1]["content"]
    assert "Where is chlorophyll?" in sent[-1]["content"]
    listed = await client.get(
        f"/api/v1/ai/sessions/{session['id']}/messages", headers=auth(course.student_id)
    )
    assert listed.json()["items"][-1]["content"] == streamed


class SlowProvider:
    """Streams ``pieces`` words, one every ``delay`` seconds."""

    name, model, offline = "slow", "slow-model", False

    def __init__(self, pieces: int = 50, delay: float = 0.02) -> None:
        self.pieces, self.delay = pieces, delay
        self.finished = False

    async def aclose(self) -> None:
        return None

    async def complete(self, request: ProviderRequest) -> Completion:
        text = "".join(f"word{i} " for i in range(self.pieces))
        return Completion(text, 10, self.pieces, self.name, self.model)

    async def stream(self, request: ProviderRequest):
        for i in range(self.pieces):
            await asyncio.sleep(self.delay)
            yield Delta(f"word{i} ")
        self.finished = True
        yield Delta(prompt_tokens=10, completion_tokens=self.pieces)


async def test_disconnect_mid_stream_still_stores_the_partial_message(
    app, ctx, auth, course, client
):
    provider = SlowProvider()
    ctx.answering.provider = provider
    session = await _session(client, auth, course.student_id, course_id=str(course.course_id))
    body = json.dumps({"content": "Tell me about glucose"}).encode()
    headers = [
        (b"host", b"ai.test"),
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream"),
        (b"content-length", str(len(body)).encode()),
        *[(k.lower().encode(), v.encode()) for k, v in auth(course.student_id).items()],
    ]
    path = f"/api/v1/ai/sessions/{session['id']}/messages"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("ai.test", 80),
    }
    tokens_seen = 0
    enough = asyncio.Event()
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await enough.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal tokens_seen
        if message["type"] == "http.response.body" and b"event: token" in message.get("body", b""):
            tokens_seen += 1
            if tokens_seen >= 3:
                enough.set()  # the client goes away after three tokens

    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    await ctx.background.drain(10)
    async with ctx.sessions() as db:
        stored = (
            await db.execute(
                select(messages_table).where(
                    messages_table.c.session_id == uuid.UUID(session["id"]),
                    messages_table.c.role == "assistant",
                )
            )
        ).one()
    assert stored.status == "interrupted"
    assert stored.content.startswith("word0 word1 word2")
    assert len(stored.content.split()) < provider.pieces
    assert not provider.finished  # the model was not asked for the rest


async def test_sse_reaches_a_real_http_client_token_by_token(app, ctx, auth, course, client):
    """Over a socket (uvicorn), the first token arrives long before the answer ends."""
    provider = SlowProvider(pieces=20, delay=0.05)
    ctx.answering.provider = provider
    session = await _session(client, auth, course.student_id, course_id=str(course.course_id))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        arrivals: list[tuple[float, str]] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async with http.stream(
                "POST",
                f"/api/v1/ai/sessions/{session['id']}/messages",
                json={"content": "glucose"},
                headers={**auth(course.student_id), "Accept": "text/event-stream"},
            ) as response:
                assert response.headers["x-accel-buffering"] == "no"
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        arrivals.append((time.monotonic() - started, line[7:]))
        first_token = next(t for t, kind in arrivals if kind == "token")
        done = next(t for t, kind in arrivals if kind == "done")
        assert done - first_token > 0.5  # 19 more pieces, 50 ms apart, came after it
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)


async def test_a_stream_broken_by_the_model_keeps_the_part_already_sent(
    client, auth, course, ctx, openai_provider, fake_openai
):
    ctx.answering.provider = openai_provider()
    fake_openai.script.append(("break", "Glucose is made in the leaves"))
    session = await _session(client, auth, course.student_id, course_id=str(course.course_id))
    response = await client.post(
        f"/api/v1/ai/sessions/{session['id']}/messages",
        json={"content": "glucose?"},
        headers={**auth(course.student_id), "Accept": "text/event-stream"},
    )
    events = parse_sse(response.text)
    kind, problem = events[-1]
    assert kind == "error" and problem["status"] == 502 and problem["message_id"]
    listed = await client.get(
        f"/api/v1/ai/sessions/{session['id']}/messages", headers=auth(course.student_id)
    )
    stored = listed.json()["items"][-1]
    assert stored["id"] == problem["message_id"] and stored["status"] == "interrupted"
    assert stored["content"].startswith("Glucose is made")
