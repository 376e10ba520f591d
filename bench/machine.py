"""Facts about the machine and the software a result was measured with."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _command_version(args: list[str], pattern: str) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else None


def nginx_version() -> str | None:
    return _command_version(["nginx", "-v"], r"nginx/(\S+)")


def wrk_version() -> str | None:
    return _command_version(["wrk", "--version"], r"wrk\s+(\S+)")


def postgres_version(admin_url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(admin_url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return row[0] if row else None
    except Exception:
        return None


async def nats_version(url: str) -> str | None:
    try:
        import nats

        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    except Exception:
        return None
    try:
        v = nc.connected_server_version
        return f"{v.major}.{v.minor}.{v.patch}"
    finally:
        await nc.close()


async def redis_version(url: str) -> str | None:
    try:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_connect_timeout=2)
        try:
            info = await client.info("server")
            return str(info.get("redis_version"))
        finally:
            await client.aclose()
    except Exception:
        return None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def cpu_probe_seconds(iterations: int = 10_000_000) -> float:
    """CPU seconds of a plain Python loop: this shared VM's speed varies from hour to hour
    (the same loop took 1.0 s and 1.5 s half an hour apart), so runs are comparable only
    next to this number."""
    started = time.process_time()
    total = 0
    for i in range(iterations):
        total += i
    return round(time.process_time() - started, 2)


async def facts(*, admin_url: str, nats_url: str, redis_url: str) -> dict[str, Any]:
    """Everything the results section records about where it was measured."""
    load = load_average()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": f"{platform.python_implementation()} ({sys.executable})",
        "nginx": nginx_version(),
        "postgresql": postgres_version(admin_url),
        "nats": await nats_version(nats_url),
        "redis": await redis_version(redis_url),
        "wrk": wrk_version(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "cpu_probe_seconds": cpu_probe_seconds(),
    }
