"""``XapiAdapter.parse``: statements from elsewhere (a file, another LRS) -> canonical records,
validated exactly as the LRS validates them."""

from __future__ import annotations

import orjson
import pytest

from adapters.xapi import XapiAdapter
from gateway.errors import ConfigError, ValidationError
from tests.xapi_support import statement


def test_statements_with_a_result_become_evidence(store) -> None:
    s = statement(result={"success": True, "score": {"scaled": 0.8}})
    records = XapiAdapter().parse(orjson.dumps([s]), tenant="t1", source="remote-lrs", store=store)
    evidence = [r for r in records if r.KIND == "evidence"]
    assert len(evidence) == 1
    assert evidence[0].native_id == s["id"] and evidence[0].success is True


def test_an_invalid_statement_is_rejected_naming_its_path(store) -> None:
    bad = statement(actor={"mbox": "sally@example.com"})
    with pytest.raises(ValidationError) as err:
        XapiAdapter().parse(orjson.dumps([statement(), bad]), tenant="t1", source="remote-lrs", store=store)
    assert "statement[1].actor.mbox" in err.value.detail


def test_parsing_needs_a_store() -> None:
    with pytest.raises(ConfigError):
        XapiAdapter().parse(orjson.dumps(statement()), tenant="t1", source="remote-lrs")
