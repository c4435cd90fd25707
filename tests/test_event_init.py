"""The events of every call are built by a direct ``__init__``: the same events as the dataclass's."""

from __future__ import annotations

import dataclasses

import pytest

from mcp_hangar.events import ToolInvocationCompleted, ToolInvocationFailed, ToolInvocationRequested


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
