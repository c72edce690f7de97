"""The query parameters of the Statement and document resources (``statements``,
``documents``), validated as the same values are in a statement: an Agent or identified
Group as JSON (Communication 2.2), IRIs, UUIDs, timestamps (``since``, ``until``). A missing
required parameter or a bad value is a 400 naming the parameter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from .http import V2, XapiError
from .validation import IFIS, agent, bad, group, iri, timestamp, uuid_


def parse_agent_param(text: str | None, *, param: str = "agent", required: bool = True) -> dict[str, Any] | None:
    """Communication 2.2: an Agent (or identified Group) as JSON in a query parameter,
    validated as in a statement."""
    if text is None or text == "":
        if required:
            raise XapiError(400, f"the {param} parameter is required")
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise XapiError(400, f"the {param} parameter is not valid JSON") from None
    path = f"{param} parameter"
    if type(value) is dict and value.get("objectType") == "Group":
        g = group(value, path)
        if not any(k in g for k in IFIS):
            raise bad(path, "must be an identified Group (with an inverse functional identifier)")
        return g
    return agent(value, path)


def require_iri(value: str | None, param: str) -> str:
    if value is None or value == "":
        raise XapiError(400, f"the {param} parameter is required")
    return iri(value, f"{param} parameter")


def require_uuid(value: str | None, param: str) -> str:
    if value is None or value == "":
        raise XapiError(400, f"the {param} parameter is required")
    return uuid_(value, f"{param} parameter").lower()


def parse_timestamp(value: str, where: str) -> datetime:
    """A timestamp parameter (``since``, ``until``); either version's syntax."""
    return timestamp(value, where, V2)


__all__ = ["parse_agent_param", "parse_timestamp", "require_iri", "require_uuid"]
