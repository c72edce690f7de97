"""A OneRoster REST pull under the rule for references outside what was sent
(docs/oneroster-references.md, issue 15): a pulled object naming a record in neither the
pull nor the store is kept and holds the reference unresolved, one ``unresolved-reference``
warning per target in the summary; a later pull bringing the target resolves it; ``--strict``
refuses the pull, naming each place, and stores nothing. The provider is mocked with respx."""

from __future__ import annotations

import pytest
import respx

from gateway.errors import ValidationError
from gateway.model import record_id
from gateway.store import Store
from gateway.wiring import open_store
from tests.test_oneroster_client import SITE, Provider, T, client, ref, roster, wire_class, wire_enrollment, wire_org, wire_user


def outside() -> dict[str, list[dict]]:
    """A roster whose class names a course the provider does not list, whose school's parent
    is another district's, and with an enrollment of a user it filtered out."""
    data = roster(3)
    data["orgs"][1]["parent"] = ref("org", "other-district")
    data["orgs"] = [data["orgs"][1], data["orgs"][0]]  # the parent check waits for the whole collection
    data["classes"].append(wire_class("k2", course="c9"))
    data["enrollments"] += [wire_enrollment("ghost"), wire_enrollment("ghost", cls="k2")]
    return data


def pairs(summary: object) -> list[tuple[str | None, str | None]]:
    return [(d.location, d.field) for d in summary.deviations.items if d.kind == "unresolved-reference"]  # type: ignore[attr-defined]


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_references_outside_the_pull_are_held_and_resolve_with_a_later_pull(store: Store, respx_mock: respx.MockRouter) -> None:
    Provider(respx_mock, outside())
    with client() as c:
        summary = c.pull(store, tenant=T, batch=2)
    assert sorted(pairs(summary)) == [("classes sourcedId k2", "course"), ("enrollments sourcedId k1:ghost", "user"),
                                      ("orgs sourcedId s1", "parent")]
    assert summary.deviations.counts == {"unresolved-reference": 3}
    assert summary.unresolved == {"course": 1, "org": 1, "person": 1}
    assert store.records.count(T, "enrollment") == 5 and store.records.count(T, "section") == 2
    ghost = record_id(T, "person", "sis", "ghost")
    (e,) = [x for x in store.records.iter_records(T, ["enrollment"]) if x.native_id == "k1:ghost"]
    assert e.person_id == ghost  # the id the user will have: nothing invented
    assert e.extensions["unresolved"] == [{"field": "person_id", "kind": "person", "id": str(ghost), "native_id": "ghost"}]
    # the provider lists the user later: the reference resolves, nothing rewritten, no warning about it
    data = outside()
    data["users"].append(wire_user("ghost"))
    respx_mock.routes.clear()
    Provider(respx_mock, data)
    with client() as c:
        again = c.pull(store, tenant=T)
    assert ("enrollments sourcedId k1:ghost", "user") not in pairs(again)
    assert store.records.get(T, "person", ghost).native_id == "ghost"


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_target_stored_before_the_pull_is_no_deviation(store: Store, respx_mock: respx.MockRouter) -> None:
    Provider(respx_mock, roster(2))
    with client() as c:
        c.pull(store, tenant=T)
    respx_mock.routes.clear()
    Provider(respx_mock, {"orgs": [], "academicSessions": [], "courses": [], "classes": [wire_class("k3")], "users": [],
                          "enrollments": []})
    with client() as c:
        summary = c.pull(store, tenant=T, since="2026-01-01T00:00:00Z")
    assert not summary.deviations and store.records.count(T, "section") == 2


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_strict_refuses_the_pull_naming_each_place_and_stores_nothing(store: Store, respx_mock: respx.MockRouter) -> None:
    Provider(respx_mock, outside())
    with client() as c, pytest.raises(ValidationError) as e:
        c.pull(store, tenant=T, batch=2, strict=True)
    places = {(d.location, d.field) for d in e.value.errors}
    assert {("classes sourcedId k2", "course"), ("enrollments sourcedId k1:ghost", "user"), ("orgs sourcedId s1", "parent")} <= places
    for kind in ("org", "academic_session", "course", "section", "person", "enrollment"):
        assert store.records.count(T, kind) == 0


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_cli_pull_prints_the_held_references_and_strict_refuses(cli, respx_mock: respx.MockRouter) -> None:
    cli("migrate")
    Provider(respx_mock, {**outside(), "orgs": [wire_org("d1"), wire_org("s1", type="school", parent=ref("org", "d1"))]})
    with pytest.raises(ValidationError, match="no such course"):
        cli("import", "oneroster", "--url", SITE, "--tenant", T, "--strict")
    result = cli("import", "oneroster", "--url", SITE, "--tenant", T)
    assert "unresolved-reference" in result.output and "'ghost'" in result.output and "'c9'" in result.output
    store = open_store(cli.url)
    try:
        assert store.records.count(T, "enrollment") == 5
    finally:
        store.dispose()
