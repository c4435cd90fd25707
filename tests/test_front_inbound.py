"""The front's own check of a 2026-07-28 envelope accepts only what the SDK's classifier accepts, with the
same protocol version and client capabilities; anything else is left to the SDK."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from mcp_hangar.front.inbound import accepted_modern, sdk

MODERN = "2026-07-28"
SUPPORTED = (MODERN,)
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"
NAMES = ["fast__echo", "a b", "=?base64?x?=", "=?base64?ZmFzdF9fZWNobw==?=", "", "é"]
VERSIONS: list[Any] = [MODERN, "2025-11-25", "", None, 20260728, "2026-07-28 "]
METHODS = ["tools/call", "prompts/get", "resources/read", "tools/list", "server/discover", "x"]


def _b64(text: str) -> str:
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="


def _sdk_answer(message: dict[str, Any], headers: dict[str, str] | None) -> tuple[str, Any] | None:
    module = sdk()
    verdict = module.classify_inbound_request(message, headers=headers, supported_modern_versions=SUPPORTED)
    if isinstance(verdict, module.InboundLadderRejection):
        return None
    return verdict.protocol_version, verdict.client_capabilities


def _check(message: dict[str, Any], headers: dict[str, str] | None) -> tuple[str, Any] | None:
    """The front's answer, as the session calls it (params already known to be an object or absent)."""
    ours = accepted_modern(message["method"], message.get("params") or {}, headers, SUPPORTED)
    if ours is not None:
        expected = _sdk_answer(message, headers)
        assert expected is not None, (message, headers)
        assert ours[0] == expected[0] and ours[1] is expected[1]
    return ours


_caps: st.SearchStrategy[Any] = st.sampled_from([{}, {"sampling": {}}, None, []])
_version = st.sampled_from([MODERN, MODERN, MODERN, *VERSIONS])
_meta = st.one_of(
    st.fixed_dictionaries({VERSION_KEY: _version, CAPS_KEY: _caps}),
    st.fixed_dictionaries({VERSION_KEY: _version, CAPS_KEY: _caps}),
    st.fixed_dictionaries({}, optional={VERSION_KEY: st.sampled_from(VERSIONS), CAPS_KEY: _caps,
                                        "io.modelcontextprotocol/clientInfo": st.just({"name": "c"})}),
    st.sampled_from([None, [], "x"]),
)
_name = st.sampled_from([*NAMES, _b64("fast__echo"), _b64("é"), None, 7])
_params: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"_meta": _meta}, optional={"name": _name, "uri": _name, "arguments": st.just({})})
_header_value = st.sampled_from([*NAMES, *[v for v in VERSIONS if isinstance(v, str)], *METHODS,
                                 _b64("fast__echo"), _b64("é"), " fast__echo"])
# Each routing header: the body's own value, that value base64-wrapped, another value, or absent.
_how = st.sampled_from(["mirror", "mirror", "mirror", "mirror", "base64", "base64", "other", "absent"])


def _header(how: str, value: Any, other: str) -> str | None:
    if how == "absent" or (how != "other" and not isinstance(value, str)):
        return None
    return value if how == "mirror" else _b64(value) if how == "base64" else other


@settings(max_examples=4000, deadline=None)
@given(method=st.sampled_from(["tools/call", *METHODS]), params=st.one_of(st.none(), _params, _params, _params),
       stdio=st.sampled_from([False, False, True]),
       hows=st.tuples(_how, _how, _how), others=st.tuples(_header_value, _header_value, _header_value))
def test_what_the_front_accepts_the_sdk_accepts_with_the_same_answer(
        method: str, params: dict[str, Any] | None, stdio: bool, hows: tuple[str, str, str],
        others: tuple[str, str, str]) -> None:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    headers: dict[str, str] | None = None
    if not stdio:
        meta = params.get("_meta") if params is not None else None
        body = (meta.get(VERSION_KEY) if isinstance(meta, dict) else None, method,
                params.get("uri" if method == "resources/read" else "name") if params is not None else None)
        given_values = [_header(how, value, other) for how, value, other in zip(hows, body, others, strict=True)]
        headers = {k: v for k, v in zip(("mcp-protocol-version", "mcp-method", "mcp-name"), given_values,
                                        strict=True) if v is not None}
    ours = _check(message, headers)
    event("accepted here" if ours is not None else
          "left to the SDK, which accepts" if _sdk_answer(message, headers) is not None else "rejected")


def test_the_common_well_formed_requests_are_accepted_without_the_sdk() -> None:
    meta = {VERSION_KEY: MODERN, CAPS_KEY: {"elicitation": {}}}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "fast__echo", "arguments": {}, "_meta": meta}}
    headers = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "fast__echo"}
    assert _check(call, headers) == (MODERN, meta[CAPS_KEY])
    assert _check(call, None) == (MODERN, meta[CAPS_KEY])  # stdio: no headers to compare
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///a", "_meta": meta}}
    assert _check(read, {**headers, "mcp-method": "resources/read", "mcp-name": "file:///a"}) is not None
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}}
    assert _check(listing, {"mcp-protocol-version": MODERN, "mcp-method": "tools/list"}) is not None


def test_what_the_front_leaves_to_the_sdk() -> None:
    meta = {VERSION_KEY: MODERN, CAPS_KEY: {}}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "é", "_meta": meta}}
    headers = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": _b64("é")}
    assert _check(call, headers) is None and _sdk_answer(call, headers) == (MODERN, {})  # the SDK accepts it
    for bad in ({**headers, "mcp-name": "x"}, {**headers, "mcp-method": "tools/list"},
                {"mcp-method": "tools/call", "mcp-name": "é"}):
        assert _check(call, bad) is None and _sdk_answer(call, bad) is None
    old = {**call, "params": {"name": "é", "_meta": {**meta, VERSION_KEY: "2025-11-25"}}}
    assert _check(old, None) is None and _sdk_answer(old, None) is None
