"""Tool access policies: which upstream tools clients may see and call.

A policy has an ``allow_list`` and a ``deny_list`` of glob patterns (``fnmatch``: ``*``, ``?``,
``[abc]``) over the upstream tool name. Deny wins; a non-empty allow list admits only what matches.

Scopes, broadest first: ``mcp_server`` (alias ``provider``), ``group``, ``member``. A call straight to a
server is judged by that server's policy. A group's tool is judged by the group's policy and, for
every member, the member's ``mcp_server`` and ``member`` policies: each narrower scope can only
remove tools, never add them back, and a group tool is offered only when every member may serve it,
so whichever member the strategy picks, the answer is the same.

Policies come from the config file (``tools: {allow_list, deny_list}`` on a server or group) and
from REST; a REST policy replaces the file's for the same scope and target until it is cleared.
Patterns are compiled once; decisions are cached per (target, tool) until a policy or the fleet
changes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SCOPES = ("mcp_server", "group", "member")
SCOPE_ALIASES = {"provider": "mcp_server", "mcp_servers": "mcp_server", "groups": "group", "members": "member"}


def normalize_scope(scope: str) -> str | None:
    """The canonical scope name, or None when ``scope`` is not one."""
    scope = SCOPE_ALIASES.get(scope, scope)
    return scope if scope in SCOPES else None


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    # One regex per list. Case-sensitive, like fnmatchcase: "Add" and "add" are different tools.
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


@dataclass(frozen=True)
class Refusal:
    """Why a tool is refused: the rule, fit for an error message and a ``ToolCallRefused`` event."""

    scope: str
    target_id: str
    list_name: str  # deny_list or allow_list
    pattern: str | None  # the deny pattern that matched; None for "not in the allow list"
    source: str

    def rule(self) -> dict[str, Any]:
        return {"scope": self.scope, "target_id": self.target_id, "list": self.list_name,
                "pattern": self.pattern, "source": self.source}

    def describe(self) -> str:
        where = f"the {self.scope} policy of '{self.target_id}' ({self.source})"
        if self.pattern is not None:
            return f"denied by {where}: deny_list pattern {self.pattern!r}"
        return f"not allowed by {where}: it matches no allow_list pattern"


class Policy:
    """One scope's allow and deny lists, compiled."""

    def __init__(self, scope: str, target_id: str, allow: list[str], deny: list[str], source: str) -> None:
        self.scope, self.target_id, self.source = scope, target_id, source
        self.allow_list, self.deny_list = list(allow), list(deny)
        self._allow = _compile(allow)
        self._deny = _compile(deny)

    def view(self) -> dict[str, Any]:
        return {"scope": self.scope, "target_id": self.target_id, "allow_list": self.allow_list,
                "deny_list": self.deny_list, "source": self.source}

    def judge(self, tool: str) -> Refusal | None:
        """None when this policy lets ``tool`` through."""
        if self._deny is not None and self._deny.fullmatch(tool):
            pattern = next(p for p in self.deny_list if fnmatch.fnmatchcase(tool, p))
            return Refusal(self.scope, self.target_id, "deny_list", pattern, self.source)
        if self._allow is not None and not self._allow.fullmatch(tool):
            return Refusal(self.scope, self.target_id, "allow_list", None, self.source)
        return None


Members = Callable[[str], list[str] | None]  # group id -> member server ids, None when not a group


class PolicyEngine:
    """Effective policies (file and REST) and the cached decision per (target, tool)."""

    def __init__(self, members: Members) -> None:
        self._members = members
        self._config: dict[tuple[str, str], Policy] = {}
        self._rest: dict[tuple[str, str], Policy] = {}
        self._decisions: dict[tuple[str, str], Refusal | None] = {}
        self.version = 0

    @property
    def empty(self) -> bool:
        return not self._config and not self._rest

    def invalidate(self) -> None:
        """Forget cached decisions (a policy, a group's members or the fleet changed)."""
        self._decisions.clear()
        self.version += 1

    def set_config_policies(self, policies: dict[tuple[str, str], tuple[list[str], list[str]]]) -> None:
        self._config = {k: Policy(k[0], k[1], a, d, "config") for k, (a, d) in policies.items() if a or d}
        self.invalidate()

    def set_rest(self, scope: str, target_id: str, allow: list[str], deny: list[str]) -> Policy:
        policy = Policy(scope, target_id, allow, deny, "api")
        self._rest[(scope, target_id)] = policy
        self.invalidate()
        return policy

    def clear_rest(self, scope: str, target_id: str) -> bool:
        found = self._rest.pop((scope, target_id), None) is not None
        self.invalidate()
        return found

    def get(self, scope: str, target_id: str) -> Policy | None:
        """The effective policy of one scope and target (REST before the file)."""
        return self._rest.get((scope, target_id)) or self._config.get((scope, target_id))

    def all(self) -> list[Policy]:
        keys = sorted(set(self._config) | set(self._rest))
        return [p for k in keys if (p := self.get(*k)) is not None]

    def judge(self, target_id: str, tool: str) -> Refusal | None:
        """None when ``tool`` of ``target_id`` (a server or a group) may be listed and called."""
        key = (target_id, tool)
        try:
            return self._decisions[key]
        except KeyError:
            pass
        decision = self._judge(target_id, tool)
        if len(self._decisions) > 100_000:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

    def _judge(self, target_id: str, tool: str) -> Refusal | None:
        members = self._members(target_id)
        chain: list[tuple[str, str]]
        if members is None:
            chain = [("mcp_server", target_id)]
        else:
            chain = [("group", target_id)]
            for member in members:
                chain += [("mcp_server", member), ("member", member)]
        for scope, target in chain:
            policy = self.get(scope, target)
            if policy is not None:
                refusal = policy.judge(tool)
                if refusal is not None:
                    return refusal
        return None
