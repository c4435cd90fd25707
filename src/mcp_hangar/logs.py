"""Logging set-up: human lines on stderr, or JSON lines with ``--json-logs``. Never stdout, which
belongs to the MCP protocol in stdio mode.

Secrets are redacted from every record before it is written: bearer and basic credentials, API keys
(``mcp_...``, and common token formats), the values of secret-looking keys (``password=...``,
``"api_key": "..."``, ``token: ...``), passwords in URLs, and the values of such keys passed as
``extra=`` fields. ``redact_text`` also serves the REST log views of upstream output.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

REDACTED = "***"
_SECRET_WORDS = (r"password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
                 r"client[_-]?secret|credentials?|authorization|auth[_-]?header|cookie|session[_-]?id")
SECRET_KEY_RE = re.compile(rf"(?i)(?:{_SECRET_WORDS})")
_TEXT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: Bearer <token> / Basic <credentials>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    # key=value, key: value, "key": "value" where the key looks secret
    (re.compile(rf"""(?i)([\w.-]*(?:{_SECRET_WORDS})[\w.-]*)(["']?\s*[:=]\s*["']?)(?!{re.escape(REDACTED)}|(?:bearer|basic)\s)"""
                r"""([^\s"',;&}\]]+)"""), rf"\1\2{REDACTED}"),
    # passwords in URLs: scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@"), rf"\1{REDACTED}@"),
    # Hangar API keys, and well-known token formats
    (re.compile(r"\bmcp_(?=[A-Za-z0-9_-]*[A-Z0-9])[A-Za-z0-9_-]{32,}"), f"mcp_{REDACTED}"),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}"), REDACTED),
    (re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{20,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
]
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def redact_text(text: str) -> str:
    """``text`` with anything that looks like a secret replaced by ``***``."""
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` with secrets redacted: strings under secret-looking keys entirely, other
    strings by ``redact_text``, recursively through dicts and lists."""
    if isinstance(value, (str, bytes)):
        if key is not None and SECRET_KEY_RE.search(key):
            return REDACTED
        return redact_text(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, key) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and ``extra`` fields with secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        record.msg, record.args = redact_text(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = redact_value(value, key)
        return True


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatException(self, ei: Any) -> str:
        return redact_text(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        from . import tracing

        if tracing.ENABLED:
            ids = tracing.current_ids()
            if ids is not None:
                entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exc_info"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "INFO", json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else HumanFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
