"""Analytics (issue 7): ingest rate into facts and rollups, and report latency.

Both measurements are the analytics service's own (``analytics_service.benchmark``),
run in-process after the stack stopped; this module calls them and reports the same
way as the other phases:

- ``measure_ingest``: a platform-like mix of events (plus 5 % redelivered with other
  message ids, which only the inbox catches) is published to JetStream on a prefix of
  its own, then the service's real consumers drain it into facts and rollups; the
  clock runs until the last fact is stored (target ≥ 2,000 events/s).
- ``measure_reports``: a year of daily rollups for an instructor's courses and the
  platform, then each report through the app in-process (token check, queries, JSON or
  CSV), one request at a time (target p99 < 50 ms).

Each re-creates the ``analytics`` schema in a database of its own
(``--analytics-database``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from bench.phase import PhaseResult, Row, verdict
from bench.procmem import PeakWatch
from bench.progress import log

PHASE = "analytics"
TARGET_EVENTS_PER_S = 2000.0
TARGET_REPORT_P99_MS = 50.0
#: Where the helper may live (it was written alongside the service).
HELPERS = (
    "analytics_service.benchmark",
    "analytics_service.bench_ingest",
    "analytics_service.bench",
)


def helper() -> Any:
    for name in HELPERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "measure_ingest") or hasattr(module, "measure_reports"):
            return module
    raise RuntimeError(
        "the analytics service has no benchmark helper (analytics_service.benchmark "
        "with measure_ingest and measure_reports)"
    )


async def _call(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """Call ``fn`` with the keyword arguments it knows (the helper is young)."""
    known = inspect.signature(fn).parameters
    return await fn(**{k: v for k, v in kwargs.items() if k in known})


async def run(
    *,
    admin_url: str,
    nats_url: str,
    redis_url: str,
    database: str,
    events: int,
    requests: int,
    courses: int,
) -> PhaseResult:
    module = helper()
    result = PhaseResult(PHASE, "Analytics: JetStream → facts and rollups, and reports over a year")
    watch = PeakWatch([], include_self=True)
    common = {"admin_url": admin_url, "nats_url": nats_url, "database": database}

    if hasattr(module, "measure_ingest"):
        log(PHASE, f"ingest: {events} events through the service's consumers")
        ingest = await _call(module.measure_ingest, **common, events=events)
        rate = float(ingest.get("events_per_second") or 0.0)
        seconds = ingest.get("ingest_seconds")
        log(PHASE, "ingest done", **ingest)
        result.rows.append(
            Row(
                f"ingest, {ingest.get('events', events):,} events "
                f"(+{ingest.get('redelivered', 0)} redelivered)",
                n=int(ingest.get("events", events)),
                rate=rate,
                unit="events/s",
                max=float(seconds) * 1000 if seconds is not None else float("nan"),
            )
        )
        consistent = ingest.get("rollups_consistent")
        result.target(
            f"ingest ≥ {TARGET_EVENTS_PER_S:,.0f} events/s",
            f"{rate:,.0f} events/s"
            + ("" if consistent in (None, True) else " (rollups NOT consistent)"),
            rate >= TARGET_EVENTS_PER_S if consistent in (None, True) else False,
        )
        result.lines.append(
            f"Ingest: published first ({ingest.get('publish_seconds', '?')} s), then the "
            f"consumers (batch size {ingest.get('batch_size', '?')}) drained them in "
            f"{seconds} s (the max column); facts stored {ingest.get('facts_stored', '?')}, "
            f"rollups consistent: {consistent}."
        )
        result.raw["ingest"] = ingest

    if hasattr(module, "measure_reports"):
        log(PHASE, f"reports: a year of data for {courses} courses, {requests} requests each")
        reports = await _call(
            module.measure_reports,
            **common,
            redis_url=redis_url,
            courses=courses,
            requests=requests,
        )
        worst = 0.0
        for name, numbers in (reports.get("reports") or {}).items():
            p99 = float(numbers.get("p99_ms", float("nan")))
            if not name.startswith("baseline"):  # e.g. /healthz: the app's floor, no report
                worst = max(worst, p99)
            result.rows.append(
                Row(
                    f"report: {name}",
                    n=int(reports.get("requests_per_report", requests)),
                    p50=float(numbers.get("p50_ms", float("nan"))),
                    p99=p99,
                    max=float(numbers.get("max_ms", float("nan"))),
                )
            )
        result.target(
            f"reports over a year p99 < {TARGET_REPORT_P99_MS:g} ms (the slowest report)",
            f"p99 {worst:.1f} ms",
            worst < TARGET_REPORT_P99_MS if reports.get("reports") else None,
        )
        result.lines.append(
            f"Reports: {reports.get('courses', courses)} courses x {reports.get('days', 366)} "
            f"days of rollups, {reports.get('active_learner_rows', '?')} active-learner rows; "
            "in-process app (no gateway), one request at a time after 5 to warm up."
        )
        result.raw["reports"] = reports
    result.memory = watch.read()
    result.memory_note = "in-process: the bench driver"
    for t in result.targets:
        log(PHASE, f"target {t.what}: {verdict(t.met)}", measured=t.measured)
    return result
