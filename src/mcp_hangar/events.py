"""Domain events and the one event bus every observer subscribes to.

Events are published once. Inline listeners (metrics, the history writer) run synchronously and must
be cheap; async subscribers (WebSocket clients, tests) get a bounded queue that drops the oldest event
when full and counts what it dropped, so a slow consumer never slows Hangar.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, dataclass_transform

import orjson

log = logging.getLogger(__name__)


_ID_PREFIX = uuid.uuid4().hex[:16]  # unique per process...
_ID_COUNTER = itertools.count(1)  # ...and a counter within it: cheaper than a uuid4 per event, and ordered


def new_id() -> str:
    """A unique id (32 hex digits) for an event or a call."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


_new_id = new_id
_E = TypeVar("_E", bound="type[Event]")


def _direct_init(cls: type[Event]) -> None:
    """Give an event class an ``__init__`` that fills the instance's dict in one step.

    The one ``dataclass`` writes for a frozen class sets each field through ``object.__setattr__``,
    about half the cost of building the event; events are built on every call. Same keyword-only
    parameters, defaults and factories; the instance is the same (equality, repr, ``replace``, frozen)."""
    names, params, values = [], [], []
    scope: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    for i, f in enumerate(dataclasses.fields(cls)):
        names.append(f.name)
        if f.default is not dataclasses.MISSING:
            scope[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
            values.append(f.name)
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            values.append(f"_f{i}() if {f.name} is _MISSING else {f.name}")
        else:
            params.append(f.name)
            values.append(f.name)
    body = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
    exec(f"def __init__(self, *, {', '.join(params)}):\n    self.__dict__.update({body})", scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010


@dataclass_transform(kw_only_default=True, frozen_default=True, eq_default=False)
def event_class(cls: _E) -> _E:
    """Make ``cls`` an event dataclass: keyword-only fields that cannot be changed, ``Event``'s one
    equality, hash and repr, and an ``__init__`` that fills the instance's dict in one step.

    Instances behave as those of ``dataclass(frozen=True, kw_only=True, eq=False, repr=False)``
    (``fields``, ``asdict``, ``replace``, ``FrozenInstanceError``), at less than half its cost per class:
    ``dataclass`` compiles three functions for each frozen class (``__init__``, ``__setattr__``,
    ``__delattr__``) and, for a class without a docstring, builds one from ``inspect.signature``. Here
    ``Event``'s ``__setattr__`` and ``__delattr__`` serve every class and ``__init__`` is the one compiled
    function: the ~55 event classes took 30 ms of every boot (measured with ``-X importtime``)."""
    if cls.__doc__ is None:
        cls.__doc__ = f"The {cls.__name__} event."
    dataclass(kw_only=True, init=False, eq=False, repr=False)(cls)
    # What the one-step __init__ does not reproduce is refused, rather than built differently.
    if "__post_init__" in vars(cls) or any(not f.init for f in dataclasses.fields(cls)):
        raise TypeError(f"{cls.__name__}: an event class has no __post_init__ and no init=False field")
    _direct_init(cls)
    return cls


@event_class
class Event:
    """Base of every domain event."""

    event_id: str = field(default_factory=_new_id)
    occurred_at: float = field(default_factory=time.time)
    registry: ClassVar[dict[str, type[Event]]] = {}
    json_prefix: ClassVar[bytes] = b'{"event_type":"Event",'  # the start of ``to_json``, built once per class

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Event.registry[cls.__name__] = cls
        cls.json_prefix = b'{"event_type":' + orjson.dumps(cls.__name__) + b","

    # Events never change once published: the dataclass ``frozen`` semantics, shared by every class.
    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    # One equality, hash and repr, with the dataclass semantics, for every event class: generating (and
    # compiling) three more methods for each of the ~50 classes took a third of their import time.
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{self.__class__.__qualname__}({inner})"

    @property
    def event_type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event_type": self.event_type}
        for f in dataclasses.fields(self):
            out[f.name] = getattr(self, f.name)
        return out

    def to_json(self) -> bytes:
        """``to_dict`` as JSON, built by orjson's dataclass support (fields in order) at a fraction of the
        cost: events are serialized on every call for the history and the event log."""
        return self.json_prefix + orjson.dumps(self, default=str)[1:]


@event_class
class McpServerEvent(Event):
    mcp_server_id: str


@event_class
class McpServerRegistered(McpServerEvent):
    mode: str
    source: str


@event_class
class McpServerUpdated(McpServerEvent):
    changed_fields: list[str]
    restart_required: bool


@event_class
class McpServerDeregistered(McpServerEvent):
    reason: str = "user_request"


@event_class
class McpServerStateChanged(McpServerEvent):
    old_state: str
    new_state: str
    dead_reason: str | None = None
    message: str | None = None


@event_class
class McpServerStarted(McpServerEvent):
    mode: str
    tools_count: int
    startup_duration_ms: float
    pid: int | None = None
    protocol_version: str | None = None


@event_class
class McpServerStopped(McpServerEvent):
    reason: str
    exit_code: int | None = None


@event_class
class McpServerStartFailed(McpServerEvent):
    error_type: str
    message: str


@event_class
class McpServerCrashed(McpServerEvent):
    exit_code: int | None
    message: str


@event_class
class McpServerToolsChanged(McpServerEvent):
    tools_count: int


@event_class
class HealthCheckPassed(McpServerEvent):
    duration_ms: float


@event_class
class HealthCheckFailed(McpServerEvent):
    consecutive_failures: int
    error_message: str
    duration_ms: float = 0.0


@event_class
class ToolInvocationRequested(McpServerEvent):
    tool_name: str
    correlation_id: str
    arguments_size_bytes: int = 0


@event_class
class ToolInvocationCompleted(McpServerEvent):
    tool_name: str
    correlation_id: str
    duration_ms: float
    result_size_bytes: int
    is_error: bool = False
    arguments_size_bytes: int = 0
    principal: str | None = None


@event_class
class ToolInvocationFailed(McpServerEvent):
    tool_name: str
    correlation_id: str
    duration_ms: float
    error_type: str
    error_message: str
    arguments_size_bytes: int = 0
    principal: str | None = None


@event_class
class GroupEvent(Event):
    group_id: str


@event_class
class GroupCreated(GroupEvent):
    strategy: str
    source: str
    state: str
    members: list[str]


@event_class
class GroupUpdated(GroupEvent):
    changed_fields: list[str]


@event_class
class GroupDeleted(GroupEvent):
    pass


@event_class
class GroupMemberAdded(GroupEvent):
    member_id: str
    weight: int
    priority: int


@event_class
class GroupMemberRemoved(GroupEvent):
    member_id: str
    reason: str = "user_request"  # or server_deleted


@event_class
class GroupMemberHealthChanged(GroupEvent):
    member_id: str
    in_rotation: bool
    reason: str
    consecutive_failures: int = 0


@event_class
class GroupStateChanged(GroupEvent):
    old_state: str
    new_state: str
    healthy_count: int


@event_class
class GroupCircuitOpened(GroupEvent):
    consecutive_failures: int
    reset_timeout_s: float


@event_class
class GroupCircuitClosed(GroupEvent):
    reason: str  # recovered, probe_succeeded, rebalance


@event_class
class GroupCallRouted(GroupEvent):
    """One attempt of a call through a group, on one member (``outcome``: success, error, failure)."""

    member_id: str
    tool_name: str
    attempt: int
    outcome: str


Listener = Callable[[Event], None]
# The events a listener wants: classes (their subclasses too), or a test of the event's class.
Wanted = tuple[type[Event], ...] | Callable[[type[Event]], bool]


class Subscription:
    """A bounded async view of the bus. Iterate with ``await sub.get()``; close when done."""

    def __init__(self, bus: EventBus, maxsize: int, predicate: Callable[[Event], bool] | None) -> None:
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._maxsize = maxsize
        self._predicate = predicate
        self._wakeup = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self._predicate is not None and not self._predicate(event):
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    async def get(self, timeout: float | None = None) -> Event:
        """The next event; raises ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
        return self._queue.popleft()

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """Skip events until one matches ``predicate``; raises ``TimeoutError`` at the deadline."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.get()
                if predicate(event):
                    return event

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self.closed = True
        self._bus._unsubscribe(self)


class EventBus:
    """In-process publish/subscribe. ``publish`` never raises and never blocks."""

    def __init__(self) -> None:
        # Tuples, replaced on every change: delivery iterates them as they were, without a copy per event.
        self._listeners: tuple[tuple[Listener, Wanted | None], ...] = ()
        self._subscriptions: tuple[Subscription, ...] = ()
        self._for_class: dict[type[Event], tuple[Listener, ...]] = {}  # event class -> its listeners, in order
        self._queue: deque[Event] = deque()
        self._delivering = False

    def add_listener(self, listener: Listener, types: Wanted | None = None) -> None:
        """Call ``listener(event)`` inline for every event, or only for events of ``types`` (and their
        subclasses; or the classes ``types`` says yes to, asked once per class): a listener that acts on a
        few kinds says which, and every other event (two per tool call) skips it."""
        self._listeners += ((listener, types),)
        self._for_class = {}

    def remove_listener(self, listener: Listener) -> None:
        self._listeners = tuple(entry for entry in self._listeners if entry[0] != listener)
        self._for_class = {}

    def _listeners_of(self, cls: type[Event]) -> tuple[Listener, ...]:
        found = self._for_class.get(cls)
        if found is None:
            found = self._for_class[cls] = tuple(
                listener for listener, types in self._listeners
                if types is None or (issubclass(cls, types) if isinstance(types, tuple) else types(cls)))
        return found

    def subscribe(self, maxsize: int = 1024, predicate: Callable[[Event], bool] | None = None) -> Subscription:
        sub = Subscription(self, maxsize, predicate)
        self._subscriptions += (sub,)
        return sub

    @contextlib.contextmanager
    def subscription(
        self, maxsize: int = 1024, predicate: Callable[[Event], bool] | None = None
    ) -> Iterator[Subscription]:
        sub = self.subscribe(maxsize, predicate)
        try:
            yield sub
        finally:
            sub.close()

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions = tuple(s for s in self._subscriptions if s is not sub)

    def publish(self, event: Event) -> None:
        # An event published by a listener (a group reacting to its member's crash) is delivered after
        # the one being delivered, so every observer sees a cause before its effects.
        if self._delivering:
            self._queue.append(event)
            return
        self._delivering = True
        try:
            self._deliver(event)
            while self._queue:
                self._deliver(self._queue.popleft())
        finally:
            self._delivering = False

    def _deliver(self, event: Event) -> None:
        listeners = self._for_class.get(event.__class__)
        if listeners is None:
            listeners = self._listeners_of(event.__class__)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken observer must never break the publisher
                log.exception("event listener failed on %s", event.event_type)
        for sub in self._subscriptions:
            sub._offer(event)
