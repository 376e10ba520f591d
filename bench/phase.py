"""The result of one of the service phases (catalog, purchase, upload, tutor, analytics).

Each of those phases measures a few things (load runs, latency samples, a throughput)
and judges a few targets from an issue. They all report the same way, so the summary
table and the RESULTS.md section are written by one piece of code (:mod:`bench.report`):

- ``rows``: one per measurement, with a rate (req/s, events/s, MB/s), p50/p90/p99/max
  in ms and the number of errors;
- ``targets``: what the issue asks, what was measured, met or not (never a failure);
- ``lines``: how it was measured (settings, data, caveats);
- ``memory``: peak RSS of the processes involved, during this phase;
- ``profile``: where the time goes (the catalog phase's py-spy summary).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.loadgen import LoadResult
from bench.procmem import ProcMemory
from bench.stats import Distribution


@dataclass
class Row:
    label: str
    n: int
    rate: float | None = None
    unit: str = "req/s"
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    max: float = math.nan
    errors: int = 0

    @classmethod
    def of_load(cls, label: str, r: LoadResult) -> Row:
        return cls(
            label=label,
            n=r.requests,
            rate=r.rps,
            p50=r.p50,
            p90=r.p90,
            p99=r.p99,
            max=r.max,
            errors=r.non_2xx + r.socket_errors,
        )

    @classmethod
    def of_dist(
        cls,
        label: str,
        d: Distribution,
        *,
        rate: float | None = None,
        unit: str = "req/s",
        errors: int = 0,
    ) -> Row:
        return cls(
            label=label,
            n=d.n,
            rate=rate,
            unit=unit,
            p50=d.p50,
            p90=d.p90,
            p99=d.p99,
            max=d.max,
            errors=errors,
        )

    def rate_text(self) -> str:
        if self.rate is None or math.isnan(self.rate):
            return "-"
        if self.unit == "MB/s":
            return f"{self.rate:.1f} MB/s"
        return f"{self.rate:,.0f} {self.unit}"


@dataclass
class Target:
    what: str
    measured: str
    met: bool | None  # None: not judged (e.g. the run had errors)


@dataclass
class PhaseResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    memory: list[ProcMemory] = field(default_factory=list)
    memory_note: str = ""
    profile: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def target(self, what: str, measured: str, met: bool | None) -> None:
        self.targets.append(Target(what, measured, met))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "rows": [asdict(r) for r in self.rows],
            "targets": [asdict(t) for t in self.targets],
            "lines": self.lines,
            "memory": [m.as_dict() for m in self.memory],
            "memory_note": self.memory_note,
            "profile": self.profile,
            "raw": self.raw,
        }


def verdict(met: bool | None) -> str:
    if met is None:
        return "not judged"
    return "met" if met else "NOT met"
