"""Small statistics helpers (percentiles by nearest rank, in milliseconds)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (``nan`` when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Distribution:
    """Summary of a set of latencies (ms)."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Distribution:
        values = sorted(values_ms)
        mean = sum(values) / len(values) if values else math.nan
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            max=values[-1] if values else math.nan,
            mean=mean,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ms(value: float) -> str:
    """A latency for the tables: 3 significant-ish digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"
