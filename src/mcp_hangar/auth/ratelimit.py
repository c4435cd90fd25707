"""Token buckets per principal, and the lockout of clients that keep failing to authenticate.

A bucket holds ``burst`` tokens and gains ``rps`` per second; a call takes one or is refused with
the time until the next token. Buckets live in bounded LRU maps (idle ones are dropped first).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from .settings import BucketSettings, RateLimitSettings

MAX_BUCKETS = 10_000


class TokenBucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate, self.capacity = rate, float(capacity)
        self.tokens, self.stamp = float(capacity), now

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


class Buckets:
    """One bucket per key, all with the same settings."""

    def __init__(self, settings: BucketSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._settings.rps, self._settings.burst, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimiter:
    """The buckets of one Hangar: tool calls and REST mutations per principal, optional per-tool ones."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = settings.enabled
        self.tool_calls = Buckets(settings.tool_calls, clock)
        self.mutations = Buckets(settings.mutations, clock)
        self.per_tool = {name: Buckets(b, clock) for name, b in settings.per_tool.items()}

    def take_tool_call(self, principal_id: str, exposed_name: str) -> tuple[str, float] | None:
        """None when the call may go; else (bucket name, retry after seconds)."""
        if not self.enabled:
            return None
        wait = self.tool_calls.take(principal_id)
        if wait:
            return "tool_calls", wait
        buckets = self.per_tool.get(exposed_name)
        if buckets is not None:
            wait = buckets.take(principal_id)
            if wait:
                return f"tool:{exposed_name}", wait
        return None

    def take_mutation(self, principal_id: str) -> float:
        return self.mutations.take(principal_id) if self.enabled else 0.0


class Lockout:
    """Counts authentication failures per client; too many within the window lock it out."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = settings.enabled and settings.lockout_seconds > 0
        self.max_attempts = settings.max_attempts
        self.window = settings.window_seconds
        self.duration = settings.lockout_seconds
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def locked_for(self, client: str) -> float:
        """Seconds left of this client's lockout (0.0 when it is not locked out)."""
        if not self._locked:
            return 0.0
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> int | None:
        """Record a failure; returns the failure count when this one starts a lockout."""
        if not self.enabled:
            return None
        now = self._clock()
        times = self._failures.get(client)
        if times is None:
            times = self._failures[client] = deque()
            if len(self._failures) > MAX_BUCKETS:
                self._failures.popitem(last=False)
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_attempts:
            self._locked[client] = now + self.duration
            count = len(times)
            times.clear()
            return count
        return None

    def succeeded(self, client: str) -> None:
        if self._failures:
            self._failures.pop(client, None)
