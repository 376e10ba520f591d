"""A tiny OpenAI-compatible chat completions server for tests, run by uvicorn in a thread.

Scripted: each request takes the next step of ``script`` (default: answer ``reply``).
A step is ``("status", code)`` (an error answer), ``("sleep", seconds)`` (answer late),
``("reply", text)`` or ``("break", text)`` (a stream that dies after ``text``).
Streams are sent like OpenAI's: ``data: {chunk}`` lines, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "fake-model"


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: deque[tuple[str, object]] = deque()
        self.reply = "Plants make glucose in the chloroplasts [1]."
        self.requests: list[dict] = []
        self.chunk_delay = 0.0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- the API --------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        kind, value = self.script.popleft() if self.script else ("reply", self.reply)
        if kind == "status":
            code = int(value)
            headers = {"retry-after": "0"} if code == 429 else {}
            return JSONResponse(
                {"error": {"message": f"scripted {code}", "type": "test", "code": None}},
                status_code=code,
                headers=headers,
            )
        if kind == "sleep":
            await asyncio.sleep(float(value))
            kind, value = "reply", self.reply
        text = str(value)
        usage = {
            "prompt_tokens": 50,
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": 50 + max(1, len(text) // 4),
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        return StreamingResponse(
            self._chunks(text, usage if include_usage else None, broken=kind == "break"),
            media_type="text/event-stream",
        )

    async def _chunks(self, text: str, usage: dict | None, *, broken: bool):
        def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
            doc = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(doc)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        for word in text.split(" "):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield chunk({"content": word + " "})
        if broken:
            raise RuntimeError("stream broken on purpose")
        yield chunk({}, "stop")
        if usage is not None:
            doc = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(doc)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    # -- running --------------------------------------------------------------------

    def start(self) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
