"""Structured JSON logs with a request id, and redaction as the last line of defence.

Code logs ids, counts and outcomes, never payloads: student names, tokens and secrets
have no business in a log line. Should one slip into a message anyway (a library's
debug line, an exception text), ``RedactingFilter`` masks bearer tokens, JWTs, basic
credentials, client secrets and passwords before any handler sees the record.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_SECRET_KEYS = (
    "client_secret|secret|password|passwd|access_token|refresh_token|id_token|token|assertion|client_assertion|private_key"
)


def _mask_value(m: re.Match[str]) -> str:
    """Mask a secret's value, keeping its quotes (plain, or escaped inside a JSON string)
    so that a JSON log line stays JSON."""
    value = m.group(2)
    for q in ('\\"', '"', "'"):
        if value.startswith(q):
            closed = len(value) >= 2 * len(q) and value.endswith(q)
            return f"{m.group(1)}{q}[redacted]{q if closed else ''}"
    return f"{m.group(1)}[redacted]"


_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    # PEM blocks, first: a "private_key": "-----BEGIN ..." goes whole, not just its first word
    (re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S), "[redacted-pem]"),
    # JWTs (access tokens, id_tokens, client assertions)
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    # Authorization header values
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    # key=value and "key": "value" forms of secrets. A quoted value is masked up to its
    # closing quote (it may hold spaces and commas), also when the quotes are escaped
    # because the text is itself inside a JSON string.
    (
        re.compile(
            r"(?i)((?:" + _SECRET_KEYS + r")\\?[\"']?\s*[=:]\s*)"
            r"(\\\"(?:[^\\\"]|\\[^\"])*?\\\"|\"(?:[^\"\\]|\\.)*\"|'[^']*'|\\?[\"']?[^\"'&\s,}\\]+)"
        ),
        _mask_value,
    ),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


#: Attributes of every LogRecord; anything else passed with ``extra=`` goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_text:
            out["exc"] = record.exc_text
        return redact(orjson.dumps(out, default=str).decode())


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        base = f"{record.levelname:<7} {record.name}: {record.getMessage()}" + (f" [{rid}]" if rid else "")
        if record.exc_text:
            base += "\n" + record.exc_text
        return redact(base)


class _CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is written, not as it was when the
    handler was made: a command run in-process (tests, an embedding program) may replace
    ``sys.stderr`` and close it, and server threads that outlive it must not write there."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Install one handler on the root logger; idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tessera", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler._tessera = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # oauthlib logs whole tokens and requests at DEBUG; uvicorn has its own access log.
    logging.getLogger("oauthlib").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by gateway.api's access log
