"""The ``oneroster-rostering-1.2`` kit against deliberately faulty providers (Tessera behind
``Faulty``, one fault at a time): for each fault, exactly the expected checks fail. A kit
that passes a broken server is a defect."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conformance_oneroster_support import (
    Env,
    Exchange,
    Fault,
    assert_fails_exactly,
    drop_header,
    drop_param,
    errors_plain,
    no_auth_check,
    on,
    rewrite_body,
    run_with,
    scopes_not_enforced,
    tessera,  # noqa: F401 - the fixture
    unknown_is_200,
)

pytestmark = pytest.mark.slow


def ids(*short: str) -> set[str]:
    return {f"OR-ROS-{s}" for s in short}


def sort_ignores_order(ex: Exchange) -> None:
    ex.query = [(k, v) for k, v in ex.query if k != "orderBy"]


FAULTS: dict[str, tuple[Callable[[Env], Fault], set[str]]] = {
    "no X-Total-Count on /users": (lambda e: drop_header("x-total-count", on("/users")),
        ids("DELTA-005", "EP-008", "FLT-001", "FLT-003", "FLT-004", "FLT-005", "FLT-006", "FLT-007", "FLT-008", "FLT-014", "PAGE-001", "PAGE-004", "PAGE-005", "PAGE-013")),
    "no Link header": (lambda e: drop_header("link", on()),
        ids("PAGE-004", "PAGE-005", "PAGE-011")),
    "filter ignored": (lambda e: drop_param("filter"),
        ids("DELTA-001", "DELTA-004", "DELTA-005", "FLT-001", "FLT-002", "FLT-003", "FLT-004", "FLT-005", "FLT-006", "FLT-007", "FLT-008", "FLT-009", "FLT-010", "FLT-011", "FLT-012", "FLT-014", "FLT-015", "FLT-016", "NEST-014")),
    "limit ignored": (lambda e: drop_param("limit"),
        ids("ERR-005", "FLD-003", "PAGE-001", "PAGE-002", "PAGE-003", "PAGE-004", "PAGE-006", "PAGE-007", "PAGE-012")),
    "offset ignored": (lambda e: drop_param("offset"),
        ids("PAGE-002", "PAGE-003", "PAGE-004", "PAGE-005", "PAGE-008", "PAGE-009", "PAGE-013")),
    "orderBy ignored (always ascending)": (lambda e: Fault(request=sort_ignores_order),
        ids("SORT-002", "SORT-004", "SORT-006")),
    "fields ignored": (lambda e: drop_param("fields"),
        ids("FLD-001", "FLD-003")),
    "wrong codeMinor (invaliddata for unknownobject)": (lambda e: rewrite_body(b'"unknownobject"', b'"invaliddata"'),
        ids("ERR-001", "ERR-002", "ERR-003", "ERR-004")),
    "200 for an unknown sourcedId": (lambda e: Fault(response=unknown_is_200),
        ids("ERR-001", "ERR-002", "ERR-003", "ERR-004")),
    "no 401 without a token": (no_auth_check,
        ids("AUTH-001", "AUTH-002", "AUTH-004", "AUTH-008")),
    "scopes not enforced": (scopes_not_enforced,
        ids("AUTH-006", "AUTH-007")),
    "errors not imsx_StatusInfo": (lambda e: Fault(response=errors_plain),
        ids("AUTH-002", "AUTH-006", "AUTH-007", "DELTA-004", "ERR-001", "ERR-002", "ERR-003", "ERR-004", "ERR-005", "FLD-002", "FLT-011", "FLT-012", "PAGE-006", "PAGE-007", "PAGE-008", "PAGE-009", "PAGE-010", "SORT-005")),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_the_rostering_kit_catches_a_faulty_provider(tessera: Env, name: str) -> None:  # noqa: F811
    make, expected = FAULTS[name]
    run = run_with(tessera, "oneroster-rostering-1.2", make(tessera))
    assert_fails_exactly(run, expected)
