"""Aggregate mastery reports under grants (issue "State agencies"): a state reads the
distribution of levels of every district that granted it ``reports``, de-identified, each
district's small cells suppressed as the de-identified reports do, every read logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.model import MasteryState

from .factories import competency, framework, org, person
from .test_sharing import grant

NOW = datetime.now(UTC)


def _district(store, tenant: str, levels: dict[str, int]) -> None:
    """A school, one competency K1, and learners at the given levels on it."""
    school = org(tenant=tenant)
    fw = framework(tenant=tenant)
    comp = competency("k1", fw, tenant, code="K1")
    records: list = [school, fw, comp]
    i = 0
    for level, n in levels.items():
        for _ in range(n):
            kid = person(f"u{i}", school, tenant, given_name=f"Kid{tenant}{i}", family_name="Secretname")
            records += [kid, MasteryState(tenant=tenant, source="tessera.mastery", native_id=f"{kid.id}:{comp.id}", learner_id=kid.id,
                                          competency_id=comp.id, level=level, value=1.0, mastered=level == "Proficient",
                                          method="latest", evidence_count=1, computed_at=NOW)]
            i += 1
    store.records.apply(tenant, records)


def test_a_state_reads_the_granting_districts_reports_suppressed_and_logged(api):
    _district(api.store, "d1", {"Proficient": 12, "Beginning": 3})
    _district(api.store, "d2", {"Developing": 20})
    _district(api.store, "d3", {"Developing": 20})  # grants the feed only: not in the reports
    g1 = grant(api.store, "d1", scopes=["reports"], kinds=["mastery_state"])
    grant(api.store, "d2", scopes=["reports"], kinds=["mastery_state"])
    grant(api.store, "d3", scopes=["changes.readonly"], kinds=["mastery_state"])
    state = api.auth_client("state", ["reports.deidentified"])

    r = state.get("/v1/reports/granted/distribution")
    assert r.status_code == 200, r.text
    rows = r.json()["items"]
    cells = {(row["tenant"], row["level"]): row["learners"] for row in rows}
    assert {t for t, _ in cells} == {"d1", "d2"}
    # d1: 3 Beginning is a small cell; 12 Proficient goes too, or 15 - 12 would give it back
    assert cells[("d1", "Beginning")] is None and cells[("d1", "Proficient")] is None
    assert cells[("d2", "Developing")] == 20
    assert "Secretname" not in r.text and "Kidd1" not in r.text
    csv = state.get("/v1/reports/granted/distribution", params={"format": "csv"}).text
    assert csv.splitlines()[0].startswith("tenant,grant,") and ",*," in csv

    assert state.get("/v1/reports/granted/distribution", params={"min_cell": 5}).status_code == 422
    assert state.get("/v1/reports/granted/states").status_code == 404  # a row per learner: never under a grant
    assert state.get("/v1/reports/granted/distribution", params={"org": "x"}).status_code == 422
    only = state.get("/v1/reports/granted/distribution", params={"grant": str(g1.id)}).json()
    assert {row["tenant"] for row in only["items"]} == {"d1"}

    admin = api.auth_client("d1", ["admin"])
    log = admin.get(f"/v1/grants/{g1.id}/access-log").json()["entries"]
    assert [e["action"] for e in log] == ["reports", "reports", "reports"] and log[0]["records"] == 2
    admin.post(f"/v1/grants/{g1.id}/revoke")
    assert state.get("/v1/reports/granted/distribution", params={"grant": str(g1.id)}).status_code == 403
    after = state.get("/v1/reports/granted/distribution").json()
    assert {row["tenant"] for row in after["items"]} == {"d2"}
    # a client without a report scope reads nothing
    assert api.auth_client("state", ["changes.readonly"]).get("/v1/reports/granted/distribution").status_code == 403


def test_a_grant_needs_the_record_kind_a_report_counts(api):
    _district(api.store, "d1", {"Developing": 12})
    g = grant(api.store, "d1", scopes=["reports"], kinds=["person"], starts_at=NOW - timedelta(days=1))
    state = api.auth_client("state", ["reports.deidentified"])
    assert state.get("/v1/reports/granted/distribution", params={"grant": str(g.id)}).status_code == 403
