"""A small HTTP/1.1 client on asyncio streams, for the phases that time parts of an answer.

httpx does not say when the response headers or the first body byte arrived, and costs
more CPU per request than the stack under test can spare on this machine. This is
enough for the gateway's answers: ``Content-Length`` or chunked bodies (or a body to
the end of the connection), keep-alive unless the server says ``Connection: close``.

- :func:`encode_request`: the bytes of one request (built once where a load generator
  sends the same ones again and again).
- :func:`read_answer`: read one answer, with the times its parts arrived.
- :class:`Connection`: one keep-alive connection that sends and reads in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    body: bytes
    #: Milliseconds from the request's start until the header block / the first body
    #: bytes / the whole answer had arrived.
    headers_ms: float
    first_byte_ms: float
    ms: float
    #: False when the server closes the connection after this answer.
    keep_alive: bool


def encode_request(
    method: str,
    path: str,
    netloc: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One request as bytes; a POST without a body says ``Content-Length: 0``."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def read_answer(reader: asyncio.StreamReader, started: float) -> Answer:
    """Read one answer from ``reader``; times are counted from ``started``
    (a :func:`time.perf_counter` value)."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers_at = time.perf_counter()
    status = int(head[9:12])
    length: int | None = None
    chunked = False
    keep_alive = True
    for raw in head.split(b"\r\n")[1:]:
        name, _, value = raw.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif key == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
    first: float | None = None
    payload = bytearray()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            if first is None:
                first = time.perf_counter()
            payload += data[:-2]
    elif length is not None:
        payload += await reader.readexactly(length)
    else:
        payload += await reader.read()  # until the server closes
        keep_alive = False
    end = time.perf_counter()
    return Answer(
        status=status,
        body=bytes(payload),
        headers_ms=(headers_at - started) * 1000,
        first_byte_ms=((first or end) - started) * 1000,
        ms=(end - started) * 1000,
        keep_alive=keep_alive,
    )


class Connection:
    """One keep-alive HTTP/1.1 connection to ``url``'s host; times each answer."""

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.netloc = parts.netloc
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """Send one request and read the whole answer. A network error or the timeout
        raises and closes the connection (the next request opens a new one)."""
        try:
            async with asyncio.timeout(self.timeout):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(
                        self.host, self.port, limit=1 << 20
                    )
                assert self.reader is not None
                started = time.perf_counter()
                self.writer.write(encode_request(method, path, self.netloc, headers, body))
                answer = await read_answer(self.reader, started)
        except BaseException:
            await self.close()
            raise
        if not answer.keep_alive:
            await self.close()
        return answer
