"""Pure values shared by every layer: server states, the transition table, dead reasons."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    COLD = "cold"
    INITIALIZING = "initializing"
    READY = "ready"
    DEGRADED = "degraded"
    DEAD = "dead"


class DeadReason(StrEnum):
    CRASHED = "crashed"
    START_FAILED = "start_failed"
    GIVEN_UP = "given_up"


# Every allowed (from, to) pair. A transition not listed here is a bug and raises.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.COLD: frozenset({State.INITIALIZING}),
    State.INITIALIZING: frozenset({State.READY, State.DEAD, State.COLD}),
    State.READY: frozenset({State.COLD, State.DEAD, State.DEGRADED}),
    State.DEGRADED: frozenset({State.INITIALIZING, State.COLD, State.DEAD, State.READY}),
    State.DEAD: frozenset({State.INITIALIZING, State.COLD}),
}

# States from which a call or an explicit start may (re)start the process.
STARTABLE: frozenset[State] = frozenset({State.COLD, State.DEAD, State.DEGRADED})


def can_transition(old: State, new: State) -> bool:
    return new in TRANSITIONS[old]
