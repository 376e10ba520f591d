"""HTTP load: ``wrk`` when it is installed, else a small asyncio generator.

Both are closed-loop: ``connections`` keep-alive connections each send a request,
wait for the whole answer, and send the next, for ``duration`` seconds. Latency is
measured per request from the first byte sent to the last byte received.

``wrk`` (C, one thread by default) costs far less CPU than a Python client, which
matters on a 2-core machine where the generator shares the CPUs with the servers
under test. The fallback is used when ``wrk`` is missing (or ``--loadgen asyncio``);
results say which one produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.http1 import encode_request, read_answer
from bench.progress import log
from bench.stats import Distribution

_MARK = "BENCH_RESULT "


@dataclass
class LoadResult:
    """One load run against one URL."""

    tool: str
    label: str
    url: str
    method: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    non_2xx: int
    socket_errors: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every request got a 2xx answer."""
        return self.non_2xx == 0 and self.socket_errors == 0 and self.requests > 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Variant:
    """One of several requests sent in turn: its own path, extra headers and body."""

    path: str | None = None  # path and query; None: the request URL's
    headers: dict[str, str] = field(default_factory=dict)  # on top of Request.headers
    body: bytes | None = None


@dataclass
class Request:
    """What to send: the same method and headers, bodies taken in turn.

    ``variants`` (instead of ``bodies``): requests that differ in path, headers or body,
    sent in turn. ``path_template`` (a path with one ``%d``): a new path for every
    request, the counter starting at ``counter_start`` (for cache-busting); each wrk
    thread counts in its own range of 10,000,000.
    """

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    bodies: Sequence[bytes] = ()
    variants: Sequence[Variant] = ()
    path_template: str | None = None
    counter_start: int = 0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def choose_tool(preference: str) -> str:
    """``auto`` picks wrk when installed; ``wrk`` or ``asyncio`` force one."""
    if preference == "asyncio":
        return "asyncio"
    if preference == "wrk" and not wrk_available():
        raise SystemExit("--loadgen wrk asked for, but wrk is not installed (apt-get install wrk)")
    return "wrk" if wrk_available() else "asyncio"


async def run_load(
    tool: str,
    request: Request,
    *,
    label: str,
    connections: int,
    duration: float,
    phase: str,
    request_timeout: float = 10.0,
    wrk_threads: int = 1,
) -> LoadResult:
    """Drive ``request`` with ``connections`` connections for ``duration`` seconds."""
    log(
        phase,
        f"load {label}: {connections} connections for {duration:g}s with {tool}",
        url=request.url,
    )
    if tool == "wrk":
        result = await _run_wrk(
            request,
            label=label,
            connections=connections,
            duration=duration,
            phase=phase,
            request_timeout=request_timeout,
            threads=wrk_threads,
        )
    else:
        result = await _run_asyncio(
            request,
            label=label,
            connections=connections,
            duration=duration,
            phase=phase,
            request_timeout=request_timeout,
        )
    log(
        phase,
        f"load {label} done",
        requests=result.requests,
        rps=round(result.rps, 1),
        p50_ms=round(result.p50, 3),
        p99_ms=round(result.p99, 3),
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
    )
    return result


async def _tick(phase: str, label: str, duration: float) -> None:
    """Say how far a run is, about every quarter of it (at least every 5 s)."""
    interval = min(5.0, max(1.0, duration / 4))
    start = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        elapsed = time.monotonic() - start
        pct = min(100, int(100 * elapsed / duration))
        log(phase, f"load {label} {pct}%", percent=pct)


# -- wrk ---------------------------------------------------------------------------------


def _lua_string(value: str | bytes) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    return json.dumps(value)  # a JSON string is a valid Lua string literal for our inputs


def wrk_script(request: Request) -> str:
    """The Lua script: request setup, and a ``done`` hook printing a JSON summary."""
    parts = urlsplit(request.url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"wrk.method = {_lua_string(request.method)}"]
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if request.variants:
        lines += _lua_variants(request, path)
    elif request.path_template is not None:
        # One Lua state per wrk thread: setup() gives each its own counter range.
        lines += [
            "local threads_made = 0",
            "setup = function(thread)",
            "  thread:set('tid', threads_made)",
            "  threads_made = threads_made + 1",
            "end",
            "local counter = -1",
            "request = function()",
            "  counter = counter + 1",
            f"  local n = {int(request.counter_start)} + (tid or 0) * 10000000 + counter",
            f"  return wrk.format(nil, string.format({_lua_string(request.path_template)}, n))",
            "end",
        ]
    elif len(request.bodies) == 1:
        lines.append(f"wrk.body = {_lua_string(request.bodies[0])}")
    elif len(request.bodies) > 1:
        # Several bodies: build each request in turn (one Lua state per wrk thread).
        bodies = ", ".join(_lua_string(b) for b in request.bodies)
        lines += [
            f"local bodies = {{{bodies}}}",
            "local counter = 0",
            "request = function()",
            "  counter = counter + 1",
            "  local body = bodies[(counter % #bodies) + 1]",
            f"  return wrk.format(nil, {_lua_string(path)}, nil, body)",
            "end",
        ]
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        f'  io.write("{_MARK}" .. string.format(',
        '    \'{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,\' ..',
        '    \'"max_us":%d,"mean_us":%.3f,"status":%d,"connect":%d,"read":%d,\' ..',
        '    \'"write":%d,"timeout":%d}\\n\',',
        "    summary.requests, summary.duration, latency:percentile(50),",
        "    latency:percentile(90), latency:percentile(99), latency.max, latency.mean,",
        "    e.status, e.connect, e.read, e.write, e.timeout))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def _lua_variants(request: Request, default_path: str) -> list[str]:
    """A Lua table of complete requests (wrk.format replaces wrk.headers when given any)."""
    entries = []
    for v in request.variants:
        headers = {**request.headers, **v.headers}
        table = ", ".join(f"[{_lua_string(k)}] = {_lua_string(x)}" for k, x in headers.items())
        body = _lua_string(v.body) if v.body is not None else "nil"
        entries.append(f"{{{_lua_string(v.path or default_path)}, {{{table}}}, {body}}}")
    return [
        "local variants = {",
        ",\n".join(entries),
        "}",
        # Each thread starts elsewhere in the list (tid is set by setup(), after loading).
        "local threads_made = 0",
        "setup = function(thread)",
        "  thread:set('tid', threads_made)",
        "  threads_made = threads_made + 1",
        "end",
        "local counter = nil",
        "request = function()",
        "  if counter == nil then counter = ((tid or 0) * 104729) % #variants end",
        "  counter = counter + 1",
        "  local v = variants[((counter - 1) % #variants) + 1]",
        "  local headers = {}",
        "  for k, x in pairs(v[2]) do headers[k] = x end",
        "  return wrk.format(nil, v[1], headers, v[3])",
        "end",
    ]


async def _run_wrk(
    request: Request,
    *,
    label: str,
    connections: int,
    duration: float,
    phase: str,
    request_timeout: float,
    threads: int,
) -> LoadResult:
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(wrk_script(request))
        args = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={max(1, math.ceil(request_timeout))}s",
            "-s",
            str(script),
            request.url,
        ]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        ticker = asyncio.create_task(_tick(phase, label, duration))
        try:
            limit = duration + request_timeout + 30
            out, err = await asyncio.wait_for(proc.communicate(), timeout=limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"wrk did not finish: {label}") from None
        except asyncio.CancelledError:  # the run was interrupted: wrk goes too
            proc.kill()
            await proc.wait()
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({proc.returncode}): {err.decode(errors='replace')[-500:]} {text[-500:]}"
        )
    doc = json.loads(line[len(_MARK) :])
    seconds = doc["duration_us"] / 1e6
    return LoadResult(
        tool="wrk",
        label=label,
        url=request.url,
        method=request.method,
        connections=connections,
        duration_s=seconds,
        requests=doc["requests"],
        rps=doc["requests"] / seconds if seconds else 0.0,
        p50=doc["p50_us"] / 1000,
        p90=doc["p90_us"] / 1000,
        p99=doc["p99_us"] / 1000,
        max=doc["max_us"] / 1000,
        mean=doc["mean_us"] / 1000,
        non_2xx=doc["status"],
        socket_errors=doc["connect"] + doc["read"] + doc["write"] + doc["timeout"],
        extra={"wrk_threads": threads},
    )


# -- asyncio fallback ---------------------------------------------------------------------


def _raw_request(
    request: Request,
    body: bytes | None,
    *,
    path: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    parts = urlsplit(request.url)
    if path is None:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
    return encode_request(
        request.method, path, parts.netloc, {**request.headers, **(headers or {})}, body
    )


def _payloads(request: Request) -> Iterator[bytes]:
    """The raw requests to send, in turn (endless)."""
    if request.variants:
        return itertools.cycle(
            [
                _raw_request(request, v.body, path=v.path, headers=v.headers)
                for v in request.variants
            ]
        )
    if request.path_template is not None:
        template = request.path_template
        return (
            _raw_request(request, None, path=template % n)
            for n in itertools.count(request.counter_start)
        )
    payloads = [_raw_request(request, b) for b in request.bodies] or [_raw_request(request, None)]
    return itertools.cycle(payloads)


async def _run_asyncio(
    request: Request,
    *,
    label: str,
    connections: int,
    duration: float,
    phase: str,
    request_timeout: float,
) -> LoadResult:
    parts = urlsplit(request.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rotation = _payloads(request)
    latencies: list[float] = []
    counters = {"non_2xx": 0, "errors": 0}
    start = time.perf_counter()
    deadline = start + duration

    async def connection() -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), request_timeout
                    )
                t0 = time.perf_counter()
                writer.write(next(rotation))
                async with asyncio.timeout(request_timeout):
                    answer = await read_answer(reader, t0)  # type: ignore[arg-type]
                latencies.append(answer.ms)
                if not 200 <= answer.status < 300:
                    counters["non_2xx"] += 1
                if not answer.keep_alive:
                    writer.close()
                    writer = None
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                counters["errors"] += 1
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    ticker = asyncio.create_task(_tick(phase, label, duration))
    try:
        everyone = asyncio.gather(*(connection() for _ in range(connections)))
        await asyncio.wait_for(everyone, duration + request_timeout + 5)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    seconds = time.perf_counter() - start
    dist = Distribution.of(latencies)
    return LoadResult(
        tool="asyncio",
        label=label,
        url=request.url,
        method=request.method,
        connections=connections,
        duration_s=seconds,
        requests=len(latencies),
        rps=len(latencies) / seconds if seconds else 0.0,
        p50=dist.p50,
        p90=dist.p90,
        p99=dist.p99,
        max=dist.max,
        mean=dist.mean,
        non_2xx=counters["non_2xx"],
        socket_errors=counters["errors"],
    )
