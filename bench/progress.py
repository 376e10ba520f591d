"""Progress and log lines of the benchmark: one JSON object per line on stderr.

The summary table goes to stdout; everything said while running goes here, so a
run can be piped (``make bench 2>progress.jsonl``) without mixing the two.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

# CLOCK_MONOTONIC is system-wide: a helper process (the argon2 timing) inherits the start.
_START = float(os.environ.setdefault("BENCH_START_MONOTONIC", repr(time.monotonic())))


def log(phase: str, message: str, *, level: str = "info", **fields: Any) -> None:
    """Write one progress line: time, level, phase, message and any extra fields."""
    doc: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "service": "bench",
        "phase": phase,
        "elapsed_s": round(time.monotonic() - _START, 1),
        "message": message,
    }
    doc.update(fields)
    print(json.dumps(doc, default=str), file=sys.stderr, flush=True)


def warn(phase: str, message: str, **fields: Any) -> None:
    log(phase, message, level="warning", **fields)


class _JsonHandler(logging.Handler):
    """Library log records (relay, consumer, nats) as the same JSON lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log(
                "lib",
                record.getMessage(),
                level=record.levelname.lower(),
                logger=record.name,
            )
        except Exception:  # pragma: no cover - logging must never break the run
            self.handleError(record)


def configure_library_logging(level: int = logging.WARNING) -> None:
    """Route the libraries' warnings and errors to stderr as JSON lines."""
    root = logging.getLogger()
    root.handlers[:] = [_JsonHandler()]
    root.setLevel(level)
    # Closing the NATS connection at the end is not worth a warning.
    logging.getLogger("unpuzzle_common.events.bus").setLevel(logging.ERROR)


class Ticker:
    """Logs ``n/total (pct%)`` when a new 10% (or ``step``) of a phase is done."""

    def __init__(self, phase: str, what: str, total: float, *, step: int = 10) -> None:
        self.phase = phase
        self.what = what
        self.total = max(total, 1e-9)
        self.step = step
        self._next = step

    def update(self, done: float, **fields: Any) -> None:
        pct = int(100 * done / self.total)
        if pct >= self._next:
            self._next = (pct // self.step + 1) * self.step
            log(self.phase, f"{self.what} {min(pct, 100)}%", percent=min(pct, 100), **fields)
