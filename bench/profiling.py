"""Where a service's time goes: py-spy on the running process, or cProfile in-process.

:func:`pyspy_record` samples a live process (``py-spy record --format raw``: collapsed
stacks, which flamegraph.pl and speedscope read too) while the caller drives a load.
With uvloop (which uvicorn uses when installed), time in the C event loop and its socket
writes shows as the loop's Python entry frame (``Runner.run``): "event loop + socket I/O".
Only the samples of threads on CPU are recorded (py-spy's default), so the event-loop
thread's samples per second tell how busy it was. Other threads (thread pools, the
tracing exporter) are left out: py-spy often counts their timed waits as busy.

:func:`summarise` attributes each sample's *own* time to the innermost frame's package
(SQLAlchemy, psycopg, pydantic, FastAPI/Starlette, uvicorn, OpenTelemetry, the
service's own code, ...) and lists the hottest functions. cProfile's ``tottime`` is
summarised the same way (:func:`summarise_pstats`), for machines without py-spy.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.progress import log, warn

#: Package (first path component under site-packages, or the stdlib module) -> group.
GROUPS = {
    "sqlalchemy": "SQLAlchemy",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "fastapi": "FastAPI/Starlette",
    "starlette": "FastAPI/Starlette",
    "anyio": "anyio",
    "uvicorn": "uvicorn/httptools",
    "httptools": "uvicorn/httptools",
    "h11": "uvicorn/httptools",
    "opentelemetry": "OpenTelemetry",
    "prometheus_client": "Prometheus client",
    "redis": "redis client",
    "asyncio": "event loop + socket I/O",
    "selectors": "event loop + socket I/O",
    "json": "json",
    "logging": "logging",
    "courses_service": "courses_service",
    "unpuzzle_common": "unpuzzle_common",
}

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def pyspy_path() -> str | None:
    """py-spy beside this interpreter (the venv) or on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def package_of(path: str) -> str:
    """The top-level package or stdlib module a source file belongs to."""
    if "site-packages/" in path:
        rest = path.split("site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    for marker in ("/services/", "/libs/common/"):
        if marker in path:
            parts = path.split(marker, 1)[1].split("/")
            for part in parts:
                if part.endswith("_service") or part == "unpuzzle_common":
                    return part
    match = re.search(r"/lib/python3\.\d+/([^/]+)", path)
    if match:
        return match.group(1).removesuffix(".py")
    if path.startswith("<frozen "):
        return path[len("<frozen ") :].rstrip(">").split(".")[0]
    return path.rsplit("/", 1)[-1].removesuffix(".py") or "?"


def group_of(path: str) -> str:
    package = package_of(path)
    return GROUPS.get(package, package)


@dataclass
class Summary:
    label: str
    samples: int
    seconds: float
    rate: int
    #: Own time by group and by function, in samples (or microseconds for cProfile).
    by_group: Counter[str] = field(default_factory=Counter)
    by_function: Counter[str] = field(default_factory=Counter)
    main_samples: int = 0
    tool: str = "py-spy"
    source: str = ""
    #: cProfile: time spent waiting in the event loop's poll (left out of the shares).
    waiting: int = 0

    def lines(self) -> list[str]:
        total = sum(self.by_group.values()) or 1
        groups = ", ".join(
            f"{name} {100 * n / total:.0f}%" for name, n in self.by_group.most_common(7)
        )
        hottest = ", ".join(
            f"`{name}` {100 * n / total:.1f}%" for name, n in self.by_function.most_common(5)
        )
        if self.tool == "py-spy":
            busy = 100 * self.main_samples / max(1.0, self.seconds * self.rate)
            head = (
                f"{self.label} (py-spy, {self.seconds:g} s at {self.rate} Hz: the event-loop "
                f"thread was on CPU in {self.main_samples} samples, ~{busy:.0f}% of the time)"
            )
        else:
            waited = 100 * self.waiting / max(1, total + self.waiting)
            head = (
                f"{self.label} (cProfile in-process, {self.samples} requests; the {waited:.0f}% "
                "of the time spent waiting in epoll left out)"
            )
        return [
            f"{head} — own time by package: {groups}",
            f"{self.label}, hottest functions (own time): {hottest}",
        ]


def _is_main_thread(frames: list[str]) -> bool:
    return not any("threading.py" in f and "_bootstrap" in f for f in frames)


def summarise(raw: str, *, label: str, seconds: float, rate: int, source: str = "") -> Summary:
    """A summary of py-spy's raw (collapsed) output."""
    summary = Summary(label=label, samples=0, seconds=seconds, rate=rate, source=source)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        summary.samples += n
        if not _is_main_thread(frames):
            continue  # thread pools, exporters: py-spy often counts their waits as busy
        summary.main_samples += n
        match = _FRAME.match(frames[-1])
        if match is None:
            summary.by_group["?"] += n
            continue
        path, func = match.group("file"), match.group("func")
        summary.by_group[group_of(path)] += n
        summary.by_function[f"{func} ({package_of(path)})"] += n
    return summary


async def pyspy_record(
    pid: int, *, seconds: int, output: Path, rate: int = 100, phase: str
) -> Path | None:
    """Sample ``pid`` for ``seconds`` into ``output`` (raw format); None if py-spy failed."""
    tool = pyspy_path()
    if tool is None:
        return None
    args = [
        tool,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--full-filenames",
        "--nonblocking",  # do not pause the process for each sample: less distortion
        "--output",
        str(output),
    ]
    log(phase, f"py-spy recording pid {pid} for {seconds}s", output=str(output))
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        warn(phase, "py-spy did not finish")
        return None
    if proc.returncode != 0 or not output.exists():  # noqa: ASYNC240 - a stat, after the wait
        warn(phase, "py-spy failed", output=out.decode(errors="replace")[-400:])
        return None
    return output


def summarise_pstats(stats: object, *, label: str, requests: int) -> Summary:
    """A summary of a ``pstats.Stats`` (own time = ``tottime``, in microseconds)."""
    summary = Summary(label=label, samples=requests, seconds=0.0, rate=0, tool="cProfile")
    for (path, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        micros = int(tottime * 1e6)
        if micros <= 0:
            continue
        if path == "~" and ("epoll" in func or "select.select" in func):
            summary.waiting += micros  # the loop waiting for sockets: not work
            continue
        if path == "~":  # built-ins: attribute to the builtin's name
            summary.by_group["builtins"] += micros
            summary.by_function[func] += micros
            continue
        summary.by_group[group_of(path)] += micros
        summary.by_function[f"{func} ({package_of(path)})"] += micros
    return summary
