"""The events of every call are built by a direct ``__init__``: the same events as the dataclass's. And
every event class shares one equality, hash and repr (``Event``'s) that behave as the generated ones."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from mcp_hangar.config_events import ConfigurationReloaded
from mcp_hangar.events import (
    Event,
    McpServerStateChanged,
    ToolInvocationCompleted,
    ToolInvocationFailed,
    ToolInvocationRequested,
)


def _dataclass_twin(cls: type) -> type:
    """The same fields as a plain frozen keyword-only dataclass (whose ``__init__`` is the generated one)."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(f"Twin{cls.__name__}", fields, frozen=True, kw_only=True)


@pytest.mark.parametrize("cls, kwargs", [
    (ToolInvocationRequested, {"mcp_server_id": "s", "tool_name": "t", "correlation_id": "c"}),
    (ToolInvocationCompleted, {"mcp_server_id": "s", "tool_name": "t", "correlation_id": "c", "duration_ms": 1.5,
                               "result_size_bytes": 9, "is_error": True, "principal": "user:a"}),
    (ToolInvocationFailed, {"mcp_server_id": "s", "tool_name": "t", "correlation_id": "c", "duration_ms": 2.0,
                            "error_type": "UpstreamTimeoutError", "error_message": "late"}),
])
def test_direct_init_builds_what_the_dataclass_would(cls: type, kwargs: dict[str, object]) -> None:
    event = cls(**kwargs)
    twin = _dataclass_twin(cls)(**kwargs, event_id=event.event_id, occurred_at=event.occurred_at)
    assert dataclasses.asdict(event) == dataclasses.asdict(twin)
    assert event == cls(**kwargs, event_id=event.event_id, occurred_at=event.occurred_at)
    assert isinstance(event.event_id, str) and len(event.event_id) == 32 and event.occurred_at > 0
    assert cls(**kwargs).event_id != event.event_id  # the factories run per event
    assert repr(event).startswith(f"{cls.__name__}(event_id=")
    assert dataclasses.replace(event, tool_name="other").tool_name == "other"
    assert event.to_json().startswith(f'{{"event_type":"{cls.__name__}","event_id":"{event.event_id}"'.encode())
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.tool_name = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cls(**{k: v for k, v in kwargs.items() if k != "tool_name"})  # a required field missing
    with pytest.raises(TypeError):
        cls(**kwargs, unknown=1)
    with pytest.raises(TypeError):
        cls("s", "t", "c")  # keyword-only, as declared


def _generated_twin(cls: type) -> type:
    """The same fields in a dataclass with the generated ``__eq__``, ``__hash__`` and ``__repr__``."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, kw_only=True)


@pytest.mark.parametrize("cls, kwargs, other", [
    (McpServerStateChanged, {"mcp_server_id": "s", "old_state": "cold", "new_state": "ready"},
     {"new_state": "dead"}),
    (ToolInvocationCompleted, {"mcp_server_id": "s", "tool_name": "t", "correlation_id": "c", "duration_ms": 1.5,
                               "result_size_bytes": 9, "is_error": False}, {"duration_ms": 2.5}),
])
def test_equality_hash_and_repr_behave_as_the_generated_ones(
        cls: type, kwargs: dict[str, object], other: dict[str, object]) -> None:
    stamp = {"event_id": "e1", "occurred_at": 12.5}
    event, same, differs = cls(**kwargs, **stamp), cls(**kwargs, **stamp), cls(**{**kwargs, **other}, **stamp)
    twin_cls = _generated_twin(cls)
    twin, twin_differs = twin_cls(**kwargs, **stamp), twin_cls(**{**kwargs, **other}, **stamp)
    assert event == same and hash(event) == hash(same) and hash(event) == hash(twin)
    assert event != differs and (event == differs) == (twin == twin_differs)
    assert event != cls(**kwargs, event_id="e2", occurred_at=12.5)
    assert event != twin and event != 1  # another class never compares equal, as with the generated one
    assert repr(event) == repr(twin) and repr(differs) == repr(twin_differs)
    assert len({event, same, differs}) == 2


def test_events_with_unhashable_fields_refuse_hashing_as_before() -> None:
    reloaded = ConfigurationReloaded(config_path="c.yaml", trigger="api", mcp_servers_added=["a"])
    with pytest.raises(TypeError):
        hash(reloaded)
    assert reloaded == dataclasses.replace(reloaded) and reloaded != dataclasses.replace(reloaded, groups_added=["g"])


def test_every_event_class_uses_the_shared_methods() -> None:
    """A class declared with the plain decorator would compile its own again (and, keeping the
    dataclass default, would still be correct): the shared ones are what every event class uses."""
    for module in ("mcp_hangar.auth.events", "mcp_hangar.discovery.events", "mcp_hangar.config_events"):
        importlib.import_module(module)  # registers its event classes

    classes = [c for c in Event.registry.values() if c.__module__.startswith("mcp_hangar.")]
    assert len(classes) >= 50
    for cls in classes:
        for name in ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__"):
            assert getattr(cls, name) is getattr(Event, name), (cls.__name__, name)


def test_every_event_class_behaves_as_a_frozen_keyword_only_dataclass() -> None:
    """``event_class`` (one compiled ``__init__``, the frozen methods shared) against what
    ``dataclass(frozen=True, kw_only=True)`` gives the same fields, for every event class."""
    for module in ("mcp_hangar.auth.events", "mcp_hangar.discovery.events", "mcp_hangar.config_events"):
        importlib.import_module(module)
    for cls in [c for c in Event.registry.values() if c.__module__.startswith("mcp_hangar.")]:
        required = {f.name: f"v-{f.name}" for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        event = cls(**required)
        twin = _dataclass_twin(cls)(**required, event_id=event.event_id, occurred_at=event.occurred_at)
        assert dataclasses.asdict(event) == dataclasses.asdict(twin), cls.__name__
        assert event == dataclasses.replace(event) and cls(**required).event_id != event.event_id
        assert cls.__doc__, cls.__name__
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.event_id = "changed"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            del event.occurred_at  # type: ignore[misc]
        if required:
            with pytest.raises(TypeError):
                cls(*required.values())  # keyword-only
            with pytest.raises(TypeError):
                cls(**dict(list(required.items())[1:]))  # a required field missing
        with pytest.raises(TypeError):
            cls(**required, not_a_field=1)


def test_event_class_refuses_what_its_init_would_not_reproduce() -> None:
    """A ``__post_init__`` or an ``init=False`` field would be silently skipped by the one-step
    ``__init__``: such a class is refused where it is declared."""
    from mcp_hangar.events import event_class

    with pytest.raises(TypeError, match="__post_init__"):
        @event_class
        class _WithPostInit(Event):
            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="init=False"):
        @event_class
        class _WithHiddenField(Event):
            hidden: int = dataclasses.field(default=0, init=False)
