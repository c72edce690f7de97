"""Shared helpers of the xAPI LRS tests: statements built from the spec's examples, and the
version headers. The ``lrs`` fixture is in ``tests.xapi_fixtures``."""

from __future__ import annotations

import uuid
from typing import Any

V1 = {"X-Experience-API-Version": "1.0.3"}
V2 = {"X-Experience-API-Version": "2.0.0"}


def statement(**over: Any) -> dict[str, Any]:
    """Data 2.4.s2's example statement (with a fresh id unless given)."""
    s: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": {"name": "Sally Glider", "mbox": "mailto:sally@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced", "display": {"en-US": "experienced"}},
        "object": {
            "id": "http://example.com/activities/solo-hang-gliding",
            "definition": {"name": {"en-US": "Solo Hang Gliding"}},
        },
    }
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}
