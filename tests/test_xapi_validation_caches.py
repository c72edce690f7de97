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


def test_a_definition_found_valid_is_remembered_and_an_invalid_one_refused_every_time() -> None:
    """``_KNOWN_DEFINITIONS``: a valid activity definition is checked once per distinct text; an
    invalid one is never remembered, so each statement carrying it gets the full check and its
    message; the set is bounded in count and in the length of what it holds."""
    import pytest

    from adapters.xapi.http import XapiError

    validation._KNOWN_DEFINITIONS.clear()
    good = {"name": {"en-US": "Quiz"}, "type": "http://adlnet.gov/expapi/activities/assessment"}
    bad = {"name": {"en-US": "Quiz"}, "interactionType": "not-a-type"}
    for _ in range(2):
        validation.definition(dict(good), "object.definition")
        with pytest.raises(XapiError, match=r"object\.definition\.interactionType: must be one of "):
            validation.definition(dict(bad), "object.definition")
    assert len(validation._KNOWN_DEFINITIONS) == 1
    long = {"name": {"en-US": "x" * 5_000}}
    validation.definition(long, "object.definition")  # valid, too long to keep
    assert len(validation._KNOWN_DEFINITIONS) == 1
    for i in range(validation._DEFINITIONS_KEPT + 10):
        validation.definition({"name": {"en-US": f"q{i}"}}, "d")
    assert len(validation._KNOWN_DEFINITIONS) <= validation._DEFINITIONS_KEPT
    # a definition that differs from a known one in any value is checked again
    with pytest.raises(XapiError, match=r"d\.type: must be an absolute IRI"):
        validation.definition({"name": {"en-US": "Quiz"}, "type": "not an iri"}, "d")
