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


def test_context_activities_told_by_a_known_id_are_refused_as_before_when_anything_else_differs() -> None:
    """``_known_activity``: a context activity that is only an id found valid before skips the
    full check; one with anything else (a null, another key, a wrong objectType, an id of another
    type) gets ``activity`` and its message, at its index in the array."""
    import pytest

    from adapters.xapi.http import XapiError

    known = "http://example.com/course/1"
    assert statements(statement(context={"contextActivities": {"parent": [{"id": known}]}}), V1)
    cases = [
        ({"id": known, "objectType": "Agent"}, r"statement\.context\.contextActivities\.grouping\[1\]\.objectType: must be \"Activity\""),
        ({"id": known, "extra": 1}, r"statement\.context\.contextActivities\.grouping\[1\]\.extra: is not a property"),
        ({"id": known, "objectType": None}, r"statement\.context\.contextActivities\.grouping\[1\]\.objectType: must not be null"),
        ({"id": [known]}, r"statement\.context\.contextActivities\.grouping\[1\]\.id: must be an absolute IRI"),
        ({"objectType": "Activity"}, r"statement\.context\.contextActivities\.grouping\[1\]\.id: is required"),
        ("not an object", r"statement\.context\.contextActivities\.grouping\[1\]: must be a JSON object"),
    ]
    for bad, message in cases:
        s = statement(context={"contextActivities": {"grouping": [{"id": known, "objectType": "Activity"}, bad]}})
        with pytest.raises(XapiError, match=message):
            statements(s, V1)
    # a single activity (not in an array) is still stored as an array of one
    s = statements(statement(context={"contextActivities": {"parent": {"id": known}}}), V1)[0]
    assert s["context"]["contextActivities"]["parent"] == [{"id": known}]


def test_known_durations_and_the_usual_timestamp_form_refuse_what_they_refused() -> None:
    """Durations found valid are remembered (``_KNOWN_DURATIONS``) and the usual timestamp form
    is read by the C parser: a duration or a date that is not valid is still refused, with the
    same message, however often a valid one was seen."""
    import pytest

    from adapters.xapi.http import XapiError

    for _ in range(2):
        validation.duration("PT130S", "d")
        with pytest.raises(XapiError, match=r"d: must be an ISO 8601 duration"):
            validation.duration("PT130", "d")
    assert validation.timestamp("2024-02-29T23:59:59.999Z", "t", V1) == validation.timestamp("2024-02-29T23:59:59.999+00:00", "t", V1)
    for not_real in ("2023-02-29T10:00:00.000Z", "2023-01-01T24:00:00.000Z", "2023-01-01T23:59:60.000Z", "2023-13-01T10:00:00.000Z"):
        with pytest.raises(XapiError, match=r"t: is not a real date and time"):
            validation.timestamp(not_real, "t", V1)
    # digits the pattern reads (any Unicode digit) but the C parser does not: read as before
    arabic = "2023-01-01T10:00:00.000Z".replace("1", "\u0661")
    assert validation.timestamp(arabic, "t", V1) == validation.timestamp("2023-01-01T10:00:00.000Z", "t", V1)
