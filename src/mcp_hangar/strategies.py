"""Load-balancing strategies of a group: which member takes the next call.

A strategy sees only the candidates (members in rotation, minus those already tried for this call) and
picks one, synchronously: selection and the member's in-flight increment happen without an ``await``
in between, so concurrent callers never pick on stale counts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    """What a strategy reads of a member."""

    @property
    def member_id(self) -> str: ...

    @property
    def seq(self) -> int:
        """Position in the group, stable while the member stays (members keep their order)."""

    @property
    def weight(self) -> int: ...

    @property
    def priority(self) -> int: ...

    @property
    def in_flight(self) -> int: ...


C = TypeVar("C", bound=Candidate)


class Strategy(Protocol):
    name: str

    def pick(self, candidates: Sequence[C]) -> C:
        """One of ``candidates`` (never empty, in group order)."""


class RoundRobin:
    """Each member in turn: the next member after the last one picked, in group order."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last = -1

    def pick(self, candidates: Sequence[C]) -> C:
        # Following the last pick by position (not by index) keeps the rotation fair when members
        # leave or join rotation between calls.
        chosen = next((c for c in candidates if c.seq > self._last), candidates[0])
        self._last = chosen.seq
        return chosen


class SmoothWeightedRoundRobin:
    """Nginx's smooth weighted round robin: weights 3:1 give a, a, b, a (interleaved, never bursts)."""

    name = "weighted_round_robin"

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, candidates: Sequence[C]) -> C:
        total = 0
        best: C | None = None
        best_current = 0
        for c in candidates:
            current = self._current.get(c.member_id, 0) + c.weight
            self._current[c.member_id] = current
            total += c.weight
            if best is None or current > best_current:
                best, best_current = c, current
        assert best is not None
        self._current[best.member_id] = best_current - total
        if len(self._current) > 4 * len(candidates) + 16:  # forget members long gone
            keep = {c.member_id for c in candidates}
            self._current = {k: v for k, v in self._current.items() if k in keep}
        return best


class LeastConnections:
    """The member with the fewest calls in flight right now (relative to its weight); ties in turn."""

    name = "least_connections"

    def __init__(self) -> None:
        self._tie = RoundRobin()

    def pick(self, candidates: Sequence[C]) -> C:
        # Compare in_flight / weight without floats: a/wa < b/wb  <=>  a*wb < b*wa.
        best = [candidates[0]]
        for c in candidates[1:]:
            lhs, rhs = c.in_flight * best[0].weight, best[0].in_flight * c.weight
            if lhs < rhs:
                best = [c]
            elif lhs == rhs:
                best.append(c)
        return best[0] if len(best) == 1 else self._tie.pick(best)


class WeightedRandom:
    """A random member, with probability proportional to its weight."""

    name = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[C]) -> C:
        return self._rng.choices(candidates, weights=[c.weight for c in candidates])[0]


class Priority:
    """Only the lowest ``priority`` number present among the candidates; weighted turns inside that tier.

    The next tier is used only when no member of the first one is a candidate (all out of rotation, or
    already tried for this call), so failover to tier 2 happens within the call that found tier 1 gone.
    """

    name = "priority"

    def __init__(self) -> None:
        self._within = SmoothWeightedRoundRobin()

    def pick(self, candidates: Sequence[C]) -> C:
        tier = min(c.priority for c in candidates)
        return self._within.pick([c for c in candidates if c.priority == tier])


STRATEGIES: dict[str, type[RoundRobin | SmoothWeightedRoundRobin | LeastConnections | WeightedRandom | Priority]] = {
    cls.name: cls for cls in (RoundRobin, SmoothWeightedRoundRobin, LeastConnections, WeightedRandom, Priority)
}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def make_strategy(name: str) -> Strategy:
    """A fresh strategy object; ``name`` must be one of ``STRATEGY_NAMES`` (validated earlier)."""
    return STRATEGIES[name]()


def check_strategy(name: str) -> str:
    """``name`` if it is a strategy; otherwise a ``ValueError`` that lists the valid names."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGY_NAMES)}")
    return name
