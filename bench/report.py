"""The summary table (stdout) and the dated section of bench/RESULTS.md."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.event_latency import EventResults
from bench.gateway_overhead import TARGET_P50_MS, Comparison
from bench.loadgen import LoadResult
from bench.phase import PhaseResult, verdict
from bench.procmem import ProcMemory
from bench.signin import Argon2Cost
from bench.stats import ms

EVENT_TARGET_P99_MS = 50.0
MARKER = "<!-- Sections below are written by bench/run.py: newest first, one per date and kind. -->"

HEADER = f"""# Benchmark results

Reproduce with `make bench` (that is `.venv/bin/python bench/run.py`) on an idle machine,
from the repository root, with PostgreSQL, NATS and Redis running locally; it starts
its own dev stack. `bench/README.md` says what each number measures and how.
`--quick` is a smoke run of a few seconds per phase: its numbers are not measurements.

Targets: the gateway adds ≤ {TARGET_P50_MS:g} ms at p50 to `GET /api/v1/auth/me`;
commit → consumer p99 < {EVENT_TARGET_P99_MS:g} ms on an idle machine; cached catalog
≥ 2,000 req/s with p99 < 25 ms, uncached ≥ 500 req/s; webhook accepted → enrollment
visible p99 < 100 ms; a chunked upload through the gateway ≥ 50 % of a direct S3 write;
tutor time to first streamed byte p99 < 50 ms, retrieval over 10,000 passages p99 < 20 ms;
analytics ingest ≥ 2,000 events/s, reports over a year p99 < 50 ms. A target not met is
recorded, never a failure. The mixed workload (browse, search, detail, enroll, progress,
AI through the gateway) has no target: it records requests/s, p50/p99 per route, errors
and each process's peak memory.

{MARKER}
"""


@dataclass
class RunReport:
    kind: str  # "full run", "quick smoke run", "partial run (...)"
    facts: dict[str, Any]
    tool: str | None = None
    tool_detail: str = ""
    stack: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    gateway: list[Comparison] = field(default_factory=list)
    gateway_breakdown: list[LoadResult] = field(default_factory=list)
    signin: LoadResult | None = None
    argon2: Argon2Cost | None = None
    signin_accounts: int = 0
    events: EventResults | None = None
    memory: list[ProcMemory] = field(default_factory=list)
    #: The service phases (catalog, purchase, upload, tutor, analytics), in run order.
    phases: list[PhaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def date(self) -> str:
        return str(self.facts["date"]).split()[0]

    @property
    def heading(self) -> str:
        return f"## {self.date} · {self.kind}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _text_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*headers)] + [fmt.format(*row) for row in rows]


def _facts_lines(r: RunReport) -> list[str]:
    f = r.facts
    load = f.get("load_average_at_start")
    return [
        f"- Date: {f['date']}",
        f"- Machine: {f['cpu']}, {f['cores']} cores, {f['ram_gib']} GiB RAM, Linux {f['kernel']}",
        f"- Software: Python {f['python']}, nginx {f['nginx'] or '?'}, "
        f"PostgreSQL {f['postgresql'] or '?'}, NATS {f['nats'] or '?'}, Redis {f['redis'] or '?'}",
        f"- Load generator: {r.tool_detail or r.tool or '-'}",
        f"- Stack: {r.stack or '-'}",
        f"- Load average at start: {', '.join(str(x) for x in load) if load else '?'}",
        f"- CPU probe: a 10M-iteration Python loop took {f.get('cpu_probe_seconds', '?')} s of "
        "CPU (this VM's speed varies by the hour; compare runs next to this number)",
    ]


def _gateway_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for side in ("direct", "gateway"):
        runs = c.side(side)
        rows.append(
            [
                f"{side} c={c.connections}",
                f"{c.mean(side, 'rps'):.0f}",
                ms(c.mean(side, "p50")),
                ms(c.mean(side, "p90")),
                ms(c.mean(side, "p99")),
                ", ".join(f"{x.p50:.2f}/{x.p99:.2f}" for x in runs),
                str(sum(x.non_2xx + x.socket_errors for x in runs)),
            ]
        )
    return rows


GATEWAY_HEADERS = [
    "path",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p50/p99 per round",
    "non-2xx",
]


BREAKDOWN_HEADERS = ["request", "req/s", "p50 ms", "p90 ms", "p99 ms"]


def _breakdown_rows(r: RunReport) -> list[list[str]]:
    rows = []
    for c in r.gateway[:1]:
        for side in ("direct", "gateway"):
            rows.append(
                [
                    f"{side} /me (c={c.connections}, mean of rounds)",
                    f"{c.mean(side, 'rps'):.0f}",
                    ms(c.mean(side, "p50")),
                    ms(c.mean(side, "p90")),
                    ms(c.mean(side, "p99")),
                ]
            )
    for x in r.gateway_breakdown:
        rows.append(
            [f"{x.label} (c={x.connections})", f"{x.rps:.0f}", ms(x.p50), ms(x.p90), ms(x.p99)]
        )
    return rows


def _gateway_verdict(r: RunReport, c: Comparison) -> str:
    """The per-request target is judged unsaturated (the lowest concurrency)."""
    if not c.all_ok:
        return "some answers were not 2xx: not a valid comparison"
    if c.connections == min(x.connections for x in r.gateway):
        ok = c.p50_overhead <= TARGET_P50_MS
        return f"target ≤ {TARGET_P50_MS:g} ms: {_verdict(ok)}"
    return (
        "auth is saturated here: the difference includes the CPU nginx takes from it "
        "on a shared machine (see README)"
    )


def _events_rows(e: EventResults) -> list[list[str]]:
    rows = []
    for label, stats in (("idle (one at a time)", e.idle), (f"burst of {e.burst_size}", e.burst)):
        d = stats["commit_to_handled"]
        rows.append(
            [
                label,
                str(d.n),
                ms(d.p50),
                ms(d.p90),
                ms(d.p99),
                ms(d.max),
                ms(stats["commit_to_published"].p50),
                ms(stats["published_to_delivered"].p50),
                ms(stats["delivered_to_handled"].p50),
            ]
        )
    return rows


EVENT_HEADERS = [
    "run",
    "n",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "p50 commit→PubAck",
    "p50 PubAck→delivered",
    "p50 delivered→handler",
]


def _memory_rows(memory: list[ProcMemory]) -> list[list[str]]:
    return [
        [
            m.role,
            str(m.pid),
            f"{m.vm_hwm_mib:.1f}" if m.vm_hwm_mib is not None else "?",
            f"{m.vm_rss_mib:.1f}" if m.vm_rss_mib is not None else "?",
        ]
        for m in memory
    ]


def _signin_summary(r: RunReport) -> list[str]:
    s, a = r.signin, r.argon2
    lines = []
    if a is not None:
        lines.append(
            f"{a.describe()}: one hash alone {a.hash_median_ms:.1f} ms, one verify "
            f"{a.verify_median_ms:.1f} ms (median of {len(a.hash_ms)}, nothing else running)"
        )
    if s is not None:
        lines.append(
            f"{s.connections} connections, {r.signin_accounts} accounts, {s.duration_s:.1f} s: "
            f"{s.rps:.1f} sign-ins/s, p50 {ms(s.p50)} ms, p90 {ms(s.p90)} ms, "
            f"p99 {ms(s.p99)} ms, max {ms(s.max)} ms, {s.requests} requests, "
            f"{s.non_2xx + s.socket_errors} not 200"
        )
    return lines


PHASE_HEADERS = ["run", "n", "rate", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"]


def _phase_rows(p: PhaseResult) -> list[list[str]]:
    return [
        [
            row.label,
            str(row.n),
            row.rate_text(),
            ms(row.p50),
            ms(row.p90),
            ms(row.p99),
            ms(row.max),
            str(row.errors),
        ]
        for row in p.rows
    ]


#: The mixed workload's table: one row per route, the answers it got by status.
MIXED_HEADERS = ["route", "n", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "answers"]


def _mixed_rows(p: PhaseResult, *, markdown: bool) -> list[list[str]]:
    """The mixed phase's routes, then its total (bold in markdown)."""
    routes = p.raw.get("routes", {})
    rows = []
    for row in p.rows:
        statuses = routes.get(row.label, {}).get("statuses", {})
        cells = [
            row.label,
            str(row.n),
            "-" if row.rate is None else f"{row.rate:,.1f}",
            ms(row.p50),
            ms(row.p90),
            ms(row.p99),
            ms(row.max),
            str(row.errors),
            ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "-",
        ]
        if markdown:
            cells = [c.replace("|", "\\|") for c in cells]
            if row.label not in routes:  # the total
                cells = [f"**{c}**" if c != "-" else c for c in cells]
        rows.append(cells)
    return rows


def _phase_markdown(p: PhaseResult) -> list[str]:
    out = [f"### {p.title}", ""]
    if p.rows and p.name == "mixed":
        out += _table(MIXED_HEADERS, _mixed_rows(p, markdown=True))
        out.append("")
    elif p.rows:
        out += _table(PHASE_HEADERS, _phase_rows(p))
        out.append("")
    for t in p.targets:
        out.append(f"- Target: {t.what} — measured {t.measured}: **{verdict(t.met)}**")
    out += [f"- {line}" for line in p.lines]
    if p.profile:
        out += ["", "Where the time goes:", ""] + [f"- {line}" for line in p.profile]
    if p.memory:
        out += ["", f"Peak memory during this phase — {p.memory_note}:", ""]
        out += _table(["process", "pid", "VmHWM MiB", "VmRSS MiB at end"], _memory_rows(p.memory))
    out.append("")
    return out


def _phase_text(p: PhaseResult) -> list[str]:
    out = ["", p.title.replace("`", "")]
    if p.rows and p.name == "mixed":
        out += _text_table(MIXED_HEADERS, _mixed_rows(p, markdown=False))
    elif p.rows:
        out += _text_table(PHASE_HEADERS, _phase_rows(p))
    for t in p.targets:
        out.append(f"  target {t.what}: {t.measured} — {verdict(t.met)}")
    if p.memory:
        peaks = ", ".join(
            f"{m.role} {m.vm_hwm_mib:.0f}" for m in p.memory if m.vm_hwm_mib is not None
        )
        out.append(f"  peak MiB: {peaks}")
    out += [f"  {line}" for line in p.profile]
    return out


def markdown(r: RunReport) -> str:
    out = [r.heading, ""]
    out += _facts_lines(r)
    if r.settings:
        out.append("- Settings: " + ", ".join(f"{k}={v}" for k, v in r.settings.items()))
    out.append("")
    if r.gateway:
        out += ["### Gateway overhead: `GET /api/v1/auth/me`, valid bearer token", ""]
        rows = [row for c in r.gateway for row in _gateway_rows(c)]
        out += _table(GATEWAY_HEADERS, rows)
        out.append("")
        for c in r.gateway:
            out.append(
                f"- c={c.connections}: the gateway adds **{c.p50_overhead:+.2f} ms at p50** "
                f"({c.p99_overhead:+.2f} ms at p99) — {_gateway_verdict(r, c)}"
            )
        out.append("")
    if r.gateway_breakdown:
        out += [
            "Where the gateway's time goes (one run each; nginx answers these itself):",
            "",
        ]
        out += _table(BREAKDOWN_HEADERS, _breakdown_rows(r))
        out.append("")
    if r.signin or r.argon2:
        out += ["### Sign-in (`POST /api/v1/auth/signin`, direct to auth)", ""]
        out += [f"- {line}" for line in _signin_summary(r)]
        out += [
            "- Direct to the auth service: the gateway limits credential endpoints per "
            "client address on purpose.",
            "",
        ]
    if r.events:
        e = r.events
        out += [
            "### Event latency: commit of a user row → consumer handler sees `user.registered.v1`",
            "",
        ]
        out += _table(EVENT_HEADERS, _events_rows(e))
        out.append("")
        idle = e.idle["commit_to_handled"]
        out.append(
            f"- Consumer: batch_size={e.consumer_batch}, "
            f"fetch_timeout={e.consumer_fetch_timeout:g}s; idle p99 {ms(idle.p99)} ms"
            f" — target < {EVENT_TARGET_P99_MS:g} ms: "
            f"{_verdict(idle.p99 < EVENT_TARGET_P99_MS)}"
        )
        if e.idle_stopped_early:
            out.append(
                f"- The idle run stopped at {idle.n} of {e.idle_requested} events: its time "
                "budget ran out."
            )
        out.append(
            f"- Burst: first commit → last handled {ms(e.burst_span_ms)} ms"
            + (f"; {e.burst_missing} not handled in time" if e.burst_missing else "")
        )
        out.append("")
    for p in r.phases:
        out += _phase_markdown(p)
    if r.memory:
        out += ["### Peak memory (VmHWM)", ""]
        out += _table(["process", "pid", "VmHWM MiB", "VmRSS MiB at end"], _memory_rows(r.memory))
        out.append("")
    if r.notes:
        out += ["### Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


def text(r: RunReport) -> str:
    out = [f"Unpuzzle benchmarks — {r.facts['date']} ({r.kind})"]
    out += [line.removeprefix("- ") for line in _facts_lines(r)]
    if r.gateway:
        out += ["", "Gateway overhead, GET /api/v1/auth/me"]
        out += _text_table(GATEWAY_HEADERS, [row for c in r.gateway for row in _gateway_rows(c)])
        for c in r.gateway:
            out.append(
                f"  c={c.connections}: p50 gateway - direct = {c.p50_overhead:+.3f} ms; "
                + _gateway_verdict(r, c)
            )
    if r.gateway_breakdown:
        out += ["", "Gateway breakdown (nginx answers these itself)"]
        out += _text_table(BREAKDOWN_HEADERS, _breakdown_rows(r))
    if r.signin or r.argon2:
        out += ["", "Sign-in, direct to auth"] + [f"  {line}" for line in _signin_summary(r)]
    if r.events:
        e = r.events
        out += ["", "Event latency, commit → consumer handler (ms)"]
        out += _text_table(EVENT_HEADERS, _events_rows(e))
        idle = e.idle["commit_to_handled"]
        out.append(
            f"  consumer batch_size={e.consumer_batch} fetch_timeout={e.consumer_fetch_timeout:g}s;"
            f" idle p99 target < {EVENT_TARGET_P99_MS:g} ms: "
            f"{_verdict(idle.p99 < EVENT_TARGET_P99_MS)}; burst span {ms(e.burst_span_ms)} ms"
        )
    for p in r.phases:
        out += _phase_text(p)
    if r.memory:
        out += ["", "Peak memory"]
        out += _text_table(["process", "pid", "VmHWM MiB", "VmRSS MiB"], _memory_rows(r.memory))
    if r.notes:
        out += ["", "Notes"] + [f"  - {n}" for n in r.notes]
    return "\n".join(out) + "\n"


_SECTION = re.compile(r"^## (\d{4}-\d{2}-\d{2}) · (.+)$")


def write_results(path: Path, r: RunReport) -> None:
    """Put this run's section first, replacing the one of the same date and kind.

    A full run also drops that day's smoke and partial runs: they are superseded.
    """
    existing = path.read_text() if path.exists() else ""
    _, _, body = existing.partition(MARKER)
    sections: list[tuple[str, str]] = []
    current: list[str] | None = None
    heading = ""
    for line in body.splitlines():
        if _SECTION.match(line):
            if current is not None:
                sections.append((heading, "\n".join(current).strip() + "\n"))
            heading, current = line, [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        sections.append((heading, "\n".join(current).strip() + "\n"))

    def superseded(h: str) -> bool:
        match = _SECTION.match(h)
        if h == r.heading:
            return True
        # Only the benchmark's own smoke and partial runs: other tools (tests/faults) write
        # sections here too, and a full run of this one does not replace theirs.
        ours = bool(match and match.group(2).startswith(("quick smoke run", "partial run")))
        return bool(r.kind == "full run" and match and match.group(1) == r.date and ours)

    ordered = [(r.heading, markdown(r))] + [(h, s) for h, s in sections if not superseded(h)]
    ordered.sort(key=lambda item: _SECTION.match(item[0]).group(1), reverse=True)  # type: ignore[union-attr]
    document = HEADER + "\n" + "\n".join(s for _, s in ordered)
    path.write_text(document.rstrip() + "\n")


def nan_free(value: Any) -> Any:
    """JSON cannot hold NaN: turn it into None, recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_free(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_free(v) for v in value]
    return value
