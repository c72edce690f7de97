"""OneRoster 1.2 REST binding query parameters: filter grammar, fields, sort, paging, and which
part of a filter the store answers with SQL. Filter examples are the binding's own
(``familyName='jones'``, ``dateLastModified>'2015-01-01'``, ``role='student' AND ...``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.oneroster.query import (
    Clause,
    Filter,
    clause_condition,
    matches,
    parse_filter,
    parse_list_query,
    roster_query,
    split_filter,
)
from adapters.oneroster.status_info import (
    FilterParseError,
    InvalidData,
    InvalidFilterField,
    InvalidSelectionField,
    InvalidSortField,
    UnknownObject,
    status_info,
)
from gateway.errors import AuthError, ScopeError
from gateway.store.roster import ModifiedAt, sql_condition
from gateway.wiring import open_store

# --- grammar -----------------------------------------------------------------------------------


def test_single_clause_from_the_binding_parses():
    assert parse_filter("familyName='jones'") == Filter("AND", (Clause("familyName", "=", "jones", 0),))


@pytest.mark.parametrize("pred", ["=", "!=", ">", ">=", "<", "<=", "~"])
def test_every_predicate_parses(pred):
    f = parse_filter(f"dateLastModified{pred}'2015-01-01'")
    assert f.clauses[0].predicate == pred and f.clauses[0].value == "2015-01-01"


def test_clauses_joined_by_and_parse_with_their_positions():
    f = parse_filter("role='student' AND familyName='jones'")
    assert f.op == "AND"
    assert [(c.field, c.value, c.position) for c in f.clauses] == [("role", "student", 0), ("familyName", "jones", 19)]


def test_clauses_joined_by_or_parse():
    f = parse_filter("status='active' OR status='tobedeleted' OR sourcedId='x'")
    assert f.op == "OR" and len(f.clauses) == 3


def test_mixing_and_with_or_is_refused_at_the_second_operator():
    with pytest.raises(FilterParseError) as e:
        parse_filter("a='1' AND b='2' OR c='3'")
    assert e.value.position == 16 and "not both" in e.value.detail


def test_lower_case_logical_operator_is_refused_with_a_hint():
    with pytest.raises(FilterParseError, match="upper case") as e:
        parse_filter("a='1' and b='2'")
    assert e.value.position == 6


def test_logical_operator_needs_a_space_either_side():
    with pytest.raises(FilterParseError, match="space"):
        parse_filter("a='1'AND b='2'")


def test_unquoted_value_is_refused_naming_the_position():
    with pytest.raises(FilterParseError) as e:
        parse_filter("familyName=jones")
    assert e.value.position == 11 and "single quotes" in e.value.detail


def test_unclosed_quote_is_refused_naming_where_it_opened():
    with pytest.raises(FilterParseError) as e:
        parse_filter("familyName='jones")
    assert e.value.position == 11


def test_missing_predicate_is_refused():
    with pytest.raises(FilterParseError, match="predicate"):
        parse_filter("familyName'jones'")


def test_empty_filter_is_refused():
    with pytest.raises(FilterParseError):
        parse_filter("  ")


def test_doubled_quote_is_a_quote_inside_the_value():
    assert parse_filter("familyName='O''Brien'").clauses[0].value == "O'Brien"


def test_value_may_hold_spaces_operators_and_the_word_and():
    f = parse_filter("title='Art AND Design >= 2' AND status='active'")
    assert [c.value for c in f.clauses] == ["Art AND Design >= 2", "active"]


def test_dotted_fields_parse():
    f = parse_filter("metadata.district.code='42' AND parent.sourcedId='d1'")
    assert [c.path for c in f.clauses] == [("metadata", "district", "code"), ("parent", "sourcedId")]


def test_a_parse_error_is_400_invalid_filter_field():
    with pytest.raises(FilterParseError) as e:
        parse_filter("x")
    status, body = status_info(e.value)
    assert status == 400
    assert body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == "invalid_filter_field"


# --- field checks --------------------------------------------------------------------------------


def test_unknown_filter_field_is_invalid_filter_field():
    with pytest.raises(InvalidFilterField, match="colour"):
        parse_list_query({"filter": "colour='red'"}, "user", max_limit=1000)


def test_dotted_filter_field_must_start_with_a_field_of_the_type():
    parse_list_query({"filter": "metadata.anything='1'"}, "org", max_limit=1000)
    with pytest.raises(InvalidFilterField):
        parse_list_query({"filter": "nothing.sourcedId='1'"}, "org", max_limit=1000)


def test_a_date_field_compared_with_a_non_date_is_invalid_filter_field():
    with pytest.raises(InvalidFilterField, match="not an ISO 8601"):
        parse_list_query({"filter": "dateLastModified>'yesterday'"}, "user", max_limit=1000)


def test_unknown_selection_field_is_invalid_selection_field():
    with pytest.raises(InvalidSelectionField):
        parse_list_query({"fields": "sourcedId,shoeSize"}, "user", max_limit=1000)
    assert parse_list_query({"fields": "sourcedId, givenName"}, "user", max_limit=1000).fields == ["sourcedId", "givenName"]


def test_unknown_sort_field_is_refused_as_invaliddata():
    with pytest.raises(InvalidSortField):
        parse_list_query({"sort": "shoeSize"}, "user", max_limit=1000)


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "ten"}, {"offset": "-1"}, {"offset": "1.5"}, {"orderBy": "up"}])
def test_bad_paging_parameters_are_invaliddata(params):
    with pytest.raises(InvalidData) as e:
        parse_list_query(params, "user", max_limit=1000)
    assert status_info(e.value)[1]["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == "invaliddata"


def test_a_limit_above_the_maximum_is_lowered_to_it():
    assert parse_list_query({"limit": "5000"}, "user", max_limit=1000).limit == 1000


def test_limit_defaults_to_100():
    q = parse_list_query({}, "user", max_limit=1000)
    assert (q.limit, q.offset, q.sort, q.desc) == (100, 0, None, False)


# --- evaluation in Python ------------------------------------------------------------------------

USER = {
    "sourcedId": "u1", "status": "active", "dateLastModified": "2024-03-01T10:00:00.000Z", "givenName": "Ada",
    "familyName": "O'Brien", "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1", "type": "org"}}],
    "metadata": {"house": "Red"}, "enabledUser": True,
}


@pytest.mark.parametrize(("flt", "expected"), [
    ("familyName='O''Brien'", True),
    ("familyName='o''brien'", False),          # = is exact
    ("familyName~'BRIEN'", True),              # ~ is case-insensitive contains
    ("dateLastModified>'2024-03-01'", True),   # a date is midnight UTC
    ("dateLastModified>'2024-03-01T10:00:00Z'", False),
    ("dateLastModified>='2024-03-01T11:00:00+01:00'", True),  # same instant, another zone
    ("roles.role='student'", True),
    ("roles.org.sourcedId='s2'", False),
    ("metadata.house='Red'", True),
    ("middleName!='x'", True),                 # a missing field matches only !=
    ("middleName='x'", False),
    ("enabledUser='true'", True),
    ("givenName='Bob' OR status='active'", True),
    ("givenName='Bob' AND status='active'", False),
])
def test_python_evaluation(flt, expected):
    assert matches(USER, parse_filter(flt)) is expected


def test_school_year_compares_as_a_number():
    assert matches({"schoolYear": "2024"}, parse_filter("schoolYear>'999'"))


# --- what becomes SQL ----------------------------------------------------------------------------


def _sql(c: str, kind: str) -> str | None:
    found = clause_condition(parse_filter(c).clauses[0], kind)
    cond = None if found is None else sql_condition(kind, "t1", found)
    return None if cond is None else str(cond.compile(compile_kwargs={"literal_binds": False}))


def test_date_last_modified_becomes_updated_at_on_the_indexed_column():
    assert _sql("dateLastModified>'2015-01-01'", "person") == "people.updated_at > :updated_at_1"


def test_status_and_sourced_id_become_sql():
    assert _sql("status='active'", "org") == "orgs.status = :status_1"
    assert _sql("sourcedId!='x'", "section") == "sections.native_id != :native_id_1"


def test_promoted_columns_become_sql():
    assert "orgs.type IN" in _sql("type='school'", "org")
    assert "academic_sessions.type IN" in _sql("type='gradingPeriod'", "academic_session")
    assert "enrollments.role IN" in _sql("role='student'", "enrollment")
    assert "sections.course_id IN (SELECT courses.id" in _sql("course.sourcedId='c1'", "section")
    assert "enrollments.person_id IN (SELECT people.id" in _sql("user.sourcedId='u1'", "enrollment")


def test_a_wire_token_shared_by_several_canonical_values_becomes_an_in_list():
    cond = sql_condition("enrollment", "t1", clause_condition(parse_filter("role='aide'").clauses[0], "enrollment"))
    assert set(cond.right.value) >= {"aide", "staff", "other"}


def test_contains_and_unpromoted_fields_stay_in_python():
    assert _sql("familyName='x'", "person") is None
    assert _sql("sourcedId~'x'", "person") is None


def test_and_splits_into_sql_and_python_parts():
    sql, rest = split_filter(parse_filter("dateLastModified>'2015-01-01' AND familyName='x'"), "person")
    assert len(sql) == 1 and rest == Filter("AND", (Clause("familyName", "=", "x", 34),))


def test_or_goes_to_sql_only_when_every_clause_can():
    sql, rest = split_filter(parse_filter("status='active' OR sourcedId='x'"), "person")
    assert len(sql) == 1 and rest is None
    sql, rest = split_filter(parse_filter("status='active' OR familyName='x'"), "person")
    assert sql == [] and rest is not None


def test_date_last_modified_filter_is_served_from_the_tenant_updated_at_index(tmp_path):

    store = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    store.migrate()
    try:
        q = parse_list_query({"filter": "dateLastModified>'2015-01-01T00:00:00Z'", "limit": "1000"}, "user", max_limit=1000)
        stmt = store.roster.statement(roster_query("t1", "person", q), limit=q.limit, offset=q.offset)
        compiled = stmt.compile(store.engine)
        with store.engine.connect() as conn:
            plan = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[k] for k in compiled.positiontup))]
        assert any("ix_people_tenant_updated_at_id" in p and "updated_at>?" in p for p in plan), plan
        assert not any(p.startswith("SCAN people") for p in plan), plan
    finally:
        store.dispose()


# --- imsx_StatusInfo -----------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "status", "minor"), [
    (AuthError("no token"), 401, "unauthorisedrequest"),
    (ScopeError("no", required=["roster-core.readonly"]), 403, "forbidden"),
    (UnknownObject("no user"), 404, "unknownobject"),
    (InvalidSortField("bad"), 400, "invaliddata"),  # OneRoster has no invalid_sort_field
    (InvalidSelectionField("bad"), 400, "invalid_selection_field"),
])
def test_status_info_shape(exc, status, minor):
    got, body = status_info(exc)
    assert got == status
    assert body == {
        "imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": exc.detail,
        "imsx_CodeMinor": {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}]},
    }


# --- dateLastModified agrees with the millisecond wire value ---------------------------------------


@pytest.mark.parametrize(("flt", "stored_us", "expected"), [
    (">'2024-03-01T10:00:00.123Z'", 123_456, False),  # the wire shows .123Z: not after .123Z
    (">'2024-03-01T10:00:00.123Z'", 124_000, True),
    (">='2024-03-01T10:00:00.123Z'", 123_000, True),
    ("<'2024-03-01T10:00:00.123Z'", 122_999, True),
    ("<'2024-03-01T10:00:00.123Z'", 123_999, False),
    ("<='2024-03-01T10:00:00.123Z'", 123_999, True),
    ("='2024-03-01T10:00:00.123Z'", 123_456, True),
    ("!='2024-03-01T10:00:00.123Z'", 123_456, False),
    ("='2024-03-01T10:00:00.1234Z'", 123_400, False),  # no wire value has sub-millisecond digits
])
def test_date_last_modified_sql_agrees_with_the_wire_value(flt, stored_us, expected):
    from sqlalchemy import (
        Column,
        DateTime,
        MetaData,
        Table,
        create_engine,
        insert,
        select,
    )

    c = parse_filter("dateLastModified" + flt).clauses[0]
    stored = datetime(2024, 3, 1, 10, 0, 0, stored_us)
    engine = create_engine("sqlite://")
    tbl = Table("x", MetaData(), Column("updated_at", DateTime()))
    tbl.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(tbl).values(updated_at=stored))
        from adapters.oneroster.query import _as_datetime

        got = conn.execute(select(tbl.c.updated_at).where(ModifiedAt(c.predicate, _as_datetime(c.value).replace(tzinfo=None)).on(tbl.c.updated_at))).first()
    wire = {"dateLastModified": stored.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{stored_us // 1000:03d}Z"}
    assert (got is not None) is expected
    assert matches(wire, parse_filter("dateLastModified" + flt)) is expected
