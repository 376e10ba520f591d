"""A circuit breaker for calls to the model.

Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open:
calls fail at once (no request leaves) until ``reset_seconds`` have passed. Then it is
half-open: one trial call goes through while the others still fail fast; its success
closes the circuit, its failure opens it for another ``reset_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Gauge

from ai_service.providers.base import ProviderUnavailable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

CIRCUIT_STATE = Gauge(
    "ai_provider_circuit_open", "1 while the model provider's circuit is open", ["provider"]
)


class CircuitOpen(ProviderUnavailable):
    """The circuit is open: the call was not made."""


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_seconds: float,
        name: str = "openai",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.name = name
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = CLOSED
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_seconds:
            return HALF_OPEN
        return self._state

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go out now."""
        state = self.state
        if state == CLOSED:
            return
        if state == HALF_OPEN and not self._trial_in_flight:
            self._state = HALF_OPEN
            self._trial_in_flight = True
            return
        remaining = max(1.0, self.reset_seconds - (self._clock() - self._opened_at))
        raise CircuitOpen(
            f"the model provider is failing; calls paused for {remaining:.0f}s",
            retry_after=remaining,
        )

    def abandon(self) -> None:
        """A call was given up by its caller: neither success nor failure."""
        self._trial_in_flight = False

    def record_success(self) -> None:
        self._failures = 0
        self._trial_in_flight = False
        self._state = CLOSED
        CIRCUIT_STATE.labels(self.name).set(0)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = OPEN
            self._opened_at = self._clock()
            CIRCUIT_STATE.labels(self.name).set(1)
        self._trial_in_flight = False
