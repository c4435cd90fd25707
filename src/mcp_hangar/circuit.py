"""The circuit breaker of a group: stop sending calls to a pool that keeps failing, and probe it later.

Closed -> open after ``failure_threshold`` failed calls in a row (calls are then refused at once) ->
half-open after ``reset_timeout_s``: one probe call goes through while the others are still refused. The
group closes it when the probe succeeds or when ``min_healthy`` members are back in rotation; a failed
probe opens it again for another ``reset_timeout_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from .group_config import CircuitBreakerSettings

Clock = Callable[[], float]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """The breaker's state; the group decides when a call failed and publishes the changes."""

    def __init__(self, settings: CircuitBreakerSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False

    def admit(self) -> bool | None:
        """None: refused. True: this call is the half-open probe. False: an ordinary call."""
        if self.state == CircuitState.CLOSED:
            return False
        if self.state == CircuitState.OPEN:
            if self.clock() - self.opened_at < self.settings.reset_timeout_s:
                return None
            self.state = CircuitState.HALF_OPEN
        if self.probing:
            return None
        self.probing = True
        return True

    def retry_in(self) -> float:
        return max(0.0, self.opened_at + self.settings.reset_timeout_s - self.clock())

    def open(self) -> None:
        self.state, self.opened_at, self.probing = CircuitState.OPEN, self.clock(), False

    def close(self) -> None:
        self.state, self.failures, self.probing = CircuitState.CLOSED, 0, False
