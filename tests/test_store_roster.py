"""The store's roster queries (``gateway.store.roster``, ``Store.roster``): conditions,
memberships, paging and the look-ups by native id, without any standard's vocabulary. The
OneRoster REST tests drive the same repository through the provider's paths."""

from __future__ import annotations

import orjson
import pytest

from gateway.store import Store
from gateway.store.roster import (
    AnyOf,
    Compare,
    EnrollmentAtOrg,
    OneOf,
    PersonEnrolledIn,
    PersonWithRoleAt,
    RefersTo,
    RosterQuery,
    SectionEnrolling,
)
from tests import factories as f


@pytest.fixture
def rostered(store: Store) -> dict:
    school, other = f.org("sch1"), f.org("sch2")
    crs = f.course("c1", school)
    s1, s2 = f.section("s1", crs, school), f.section("s2", crs, other)
    ada, bob = f.person("ada", school), f.person("bob", school, role="teacher")
    cy = f.person("cy", other)
    records = [school, other, crs, s1, s2, ada, bob, cy,
               f.enrollment(ada, s1), f.enrollment(bob, s1, role="teacher"), f.enrollment(cy, s2)]
    store.records.apply("t1", records)
    store.records.apply("t2", [f.org("sch1", tenant="t2")])
    return {"school": school, "other": other, "s1": s1, "s2": s2, "ada": ada, "bob": bob, "cy": cy}


def _natives(rows: list[str]) -> list[str]:
    return [orjson.loads(r)["native_id"] for r in rows]


def test_a_page_counts_every_match_and_returns_the_slice(store: Store, rostered: dict) -> None:
    q = RosterQuery("t1", "person", order_by="native_id")
    assert store.roster.page(q, limit=2, offset=0) == (3, store.roster.documents(q)[:2])
    total, rows = store.roster.page(q, limit=2, offset=2)
    assert total == 3 and _natives(rows) == ["cy"]
    assert store.roster.page(q, limit=2, offset=5) == (3, [])
    desc = RosterQuery("t1", "person", order_by="native_id", descending=True)
    assert _natives(store.roster.documents(desc)) == ["cy", "bob", "ada"]


def test_conditions_on_the_kind_table(store: Store, rostered: dict) -> None:
    def natives(kind: str, *where: object) -> list[str]:
        return sorted(_natives(store.roster.documents(RosterQuery("t1", kind, tuple(where)))))  # type: ignore[arg-type]

    assert natives("person", Compare("primary_role", "=", "teacher")) == ["bob"]
    assert natives("person", Compare("native_id", "!=", "ada")) == ["bob", "cy"]
    assert natives("org", OneOf("type", ("school", "district"))) == ["sch1", "sch2"]
    assert natives("org", OneOf("type", (), negate=True)) == ["sch1", "sch2"]  # no values: IS NOT NULL
    assert natives("section", RefersTo("org_id", "org", "sch2")) == ["s2"]
    assert natives("person", AnyOf((Compare("native_id", "=", "ada"), Compare("native_id", "=", "cy")))) == ["ada", "cy"]


def test_memberships(store: Store, rostered: dict) -> None:
    r = rostered

    def natives(kind: str, *where: object) -> list[str]:
        q = RosterQuery("t1", kind, tuple(where))  # type: ignore[arg-type]
        return sorted(_natives(store.roster.documents(q)))

    assert natives("person", PersonEnrolledIn(r["s1"].id, "student")) == ["ada"]
    assert natives("section", SectionEnrolling(r["cy"].id)) == ["s2"]
    assert len(natives("enrollment", EnrollmentAtOrg(r["school"].id))) == 2
    # a membership no column holds is checked over the JSON: no SQL page for it
    q = RosterQuery("t1", "person", (PersonWithRoleAt(r["school"].id, "teacher"),))
    assert not q.sql_only and _natives(store.roster.documents(q)) == ["bob"]
    with pytest.raises(ValueError):
        store.roster.page(q, limit=10)


def test_look_ups_by_native_id_and_back(store: Store, rostered: dict) -> None:
    r = rostered
    found = store.roster.find("t1", "section", "s1", where=[Compare("org_id", "=", r["school"].id)])
    assert found is not None and found[0] == r["s1"].id
    assert store.roster.find("t1", "section", "s1", where=[Compare("org_id", "=", r["other"].id)]) is None
    assert store.roster.find("t3", "section", "s1") is None  # tenant-bound
    assert store.roster.ids_by_native_id("t1", "person", ["ada", "nobody"]) == {"ada": r["ada"].id}
    assert store.roster.native_ids("t1", "person", [r["ada"].id, r["cy"].id]) == {r["ada"].id: "ada", r["cy"].id: "cy"}
    assert sorted(store.roster.native_ids_of(RosterQuery("t1", "section", (RefersTo("org_id", "org", "sch1"),)))) == ["s1"]
    refs = store.roster.referenced_native_ids("t1", "section", [r["s1"]])
    assert refs[("org", r["school"].id)] == "sch1" and refs[("course", r["s1"].course_id)] == "c1"
