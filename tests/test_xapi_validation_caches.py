"""Edge cases of the xAPI validation caches (``adapters.xapi.validation``)."""

from __future__ import annotations

from adapters.xapi import validation
from adapters.xapi.http import V1
from adapters.xapi.validation import statements
from tests.xapi_support import statement


def test_remembered_valid_values_hold_a_bounded_number_of_bytes() -> None:
    """The sets of IRIs and language tags found valid are bounded in bytes, not only in count:
    a client sending statements with long, ever-new extension keys (a 10 MiB request holds a
    thousand keys of 10 KB) would otherwise pin every one of them in the process, 50,000 at a time."""
    known = (validation._KNOWN_IRIS, validation._KNOWN_IRLS, validation._KNOWN_LANGS)
    for k in known:
        k.clear()  # what earlier tests of this process left
    long = "x" * 10_000
    for i in range(300):
        s = statement(context={"extensions": {f"http://example.com/{i}/{long}": 1}},
                      verb={"id": f"http://example.com/verbs/{i}/{long}", "display": {f"en-x-{i}-{'a' * 8}": "v"}})
        assert statements(s, V1)[0]["verb"]["id"].startswith("http://example.com/verbs/")
    held = sum(len(v) for k in known for v in k)
    assert held < 1_000_000
    # and a long valid value is still valid (checked each time), a long invalid one still refused
    assert validation.iri("http://example.com/" + long, "p")
