"""Changing mastery rules: replace and delete over the API and the CLI, the recompute each
change starts (and its progress), and the change log naming who made each change."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from gateway.errors import NotFound, ValidationError
from gateway.mastery.attach import engine_of
from gateway.mastery.rules import RuleBook, recomputes_of
from gateway.model import MasteryRule
from gateway.store.prepare import _free_form_dicts, record_digest

from . import factories as f
from .conftest import Api
from .test_mastery_api import READ, WRITE, learn, make_district

T = f.T


@pytest.fixture
def district(api: Api) -> dict:
    return make_district(api)


def finished(c: httpx.Client, r: httpx.Response) -> dict[str, Any]:
    """The recompute a rule change answered with, polled over HTTP until it is done."""
    link = r.headers["Link"]
    href = link[link.index("<") + 1 : link.index(">")]
    assert href == r.json()["recompute"]["href"]
    deadline = time.monotonic() + 30
    while True:
        job = c.get(href)
        assert job.status_code == 200, job.text
        body = job.json()
        if body["status"] not in ("queued", "running"):
            assert body["status"] == "done", body
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def state_of(c: httpx.Client, w: dict, comp: str = "A") -> dict[str, Any]:
    return c.get(f"/v1/learners/{w['kid'].id}/mastery/{w[comp].id}").json()["state"]


def test_a_rule_is_replaced_then_deleted_and_the_states_follow_each_change(api: Api, district: dict) -> None:
    learn(api, district, "A", 10, 2)
    learn(api, district, "A", 3, who="other")
    fw = str(district["fw"].id)
    with api.auth_client(T, WRITE) as c:
        default = state_of(c, district)["method"]
        r = c.post("/v1/mastery/rules", json={"name": "best", "method": "highest", "framework_id": fw})
        assert r.status_code == 201, r.text
        rule_id = r.json()["rule"]["id"]
        assert r.headers["Location"] == f"/v1/mastery/rules/{rule_id}"
        job = finished(c, r)
        assert job["scope"] == {"framework_id": fw} and job["learners"] == {"done": 2, "total": 2} and job["states_written"] >= 1
        assert (state_of(c, district)["method"], state_of(c, district)["level"]) == ("highest", "4")

        r = c.put(f"/v1/mastery/rules/{rule_id}", json={"name": "newest", "method": "latest", "framework_id": fw})
        assert r.status_code == 202, r.text
        assert r.headers["Location"] == r.json()["recompute"]["href"]
        assert r.json()["rule"]["id"] == rule_id and r.json()["rule"]["method"] == "latest"
        finished(c, r)
        assert state_of(c, district)["method"] == "latest" and state_of(c, district)["value"] == pytest.approx(0.2)
        got = c.get(f"/v1/mastery/rules/{rule_id}").json()
        assert got["name"] == "newest" and got["updated_by"].startswith("client:")

        r = c.delete(f"/v1/mastery/rules/{rule_id}")
        assert r.status_code == 202, r.text
        assert r.json()["rule"]["status"] == "tobedeleted"
        finished(c, r)
        assert state_of(c, district)["method"] == default
        assert c.get("/v1/mastery/rules").json()["items"] == []
        assert c.get(f"/v1/mastery/rules/{rule_id}").status_code == 404
        assert c.delete(f"/v1/mastery/rules/{rule_id}").status_code == 404  # deleted once
        # the scope is free again: the same scope's rule comes back under the same id
        r = c.post("/v1/mastery/rules", json={"name": "again", "method": "highest", "framework_id": fw})
        assert r.status_code == 201 and r.json()["rule"]["id"] == rule_id
        finished(c, r)
        assert state_of(c, district)["method"] == "highest"


def test_a_competency_rule_recomputes_its_framework_and_a_tenant_rule_the_tenant(api: Api, district: dict) -> None:
    learn(api, district, "A", 10, 2)
    with api.auth_client(T, WRITE) as c:
        r = c.post("/v1/mastery/rules", json={"name": "one", "method": "highest", "competency_id": str(district["A"].id)})
        assert r.status_code == 201, r.text
        assert finished(c, r)["scope"] == {"framework_id": str(district["fw"].id)}
        assert state_of(c, district)["method"] == "highest"
        r = c.post("/v1/mastery/rules", json={"name": "all", "method": "latest"})
        assert finished(c, r)["scope"] == {"tenant": T}
        assert state_of(c, district)["method"] == "highest"  # the competency's rule is the more specific


def test_other_tenants_ids_answer_404_like_unknown_ones_and_writes_need_the_scope(api: Api, district: dict) -> None:
    with api.auth_client(T, WRITE) as c:
        r = c.post("/v1/mastery/rules", json={"name": "best", "method": "highest"})
        rule_id, job_href = r.json()["rule"]["id"], r.json()["recompute"]["href"]
        finished(c, r)
    unknown = str(uuid.uuid4())
    with api.auth_client("t2", WRITE) as other:
        for rid in (rule_id, unknown):
            assert other.get(f"/v1/mastery/rules/{rid}").status_code == 404
            assert other.put(f"/v1/mastery/rules/{rid}", json={"name": "x", "method": "latest"}).status_code == 404
            r = other.delete(f"/v1/mastery/rules/{rid}")
            assert r.status_code == 404 and r.json()["title"] == "Not found"
            assert r.json()["errors"][0]["field"] == "rule_id"
        assert other.get(job_href).status_code == 404
        assert other.get(f"/v1/mastery/recomputes/{unknown}").status_code == 404
    with api.auth_client(T, READ) as reader:
        assert reader.get(job_href).status_code == 200
        assert reader.put(f"/v1/mastery/rules/{rule_id}", json={"name": "x", "method": "latest"}).status_code == 403
        assert reader.delete(f"/v1/mastery/rules/{rule_id}").status_code == 403
    with api.client() as anonymous:
        assert anonymous.delete(f"/v1/mastery/rules/{rule_id}").status_code == 401
    with api.auth_client(T, READ) as reader:
        assert reader.get(f"/v1/mastery/rules/{rule_id}").json()["method"] == "highest"


def test_replacements_are_validated_like_new_rules(api: Api, district: dict) -> None:
    fw = str(district["fw"].id)
    with api.auth_client(T, WRITE) as c:
        r = c.post("/v1/mastery/rules", json={"name": "best", "method": "highest", "framework_id": fw})
        rule_id = r.json()["rule"]["id"]
        finished(c, r)
        url = f"/v1/mastery/rules/{rule_id}"
        r = c.put(url, json={"name": "x", "method": "decaying_average", "decay_weight": 1.5, "framework_id": fw})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "decay_weight"
        r = c.put(url, json={"name": "x", "method": "n_of_m", "n": 1, "m": 2, "at_level": "Z", "framework_id": fw})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "at_level"
        r = c.put(url, json={"name": "x", "method": "latest", "competency_id": str(district["A"].id)})
        assert r.status_code == 422 and "keeps the rule's scope" in r.text
        r = c.put(url, json={"name": "x", "method": "latest"})  # the tenant's scope is another scope too
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "framework_id"
        r = c.put(url, json={"name": "x", "method": "latest", "framework_id": fw, "updated_by": "someone else"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "updated_by"
        assert c.put(url, content=b"[1]").status_code == 400
        assert c.put("/v1/mastery/rules/not-a-uuid", json={"name": "x", "method": "latest"}).status_code == 422
        assert c.get(url).json()["method"] == "highest"  # nothing was stored


def test_the_change_log_keeps_every_rule_change_and_who_made_it(api: Api, district: dict) -> None:
    fw = str(district["fw"].id)
    seq = max((row["seq"] for row in api.store.records.changes_since(T, 0, 100000)), default=0)
    with api.auth_client(T, WRITE) as c:
        r = c.post("/v1/mastery/rules", json={"name": "best", "method": "highest", "framework_id": fw})
        created, rule_id = r.json()["rule"], r.json()["rule"]["id"]
        finished(c, r)
        r = c.put(f"/v1/mastery/rules/{rule_id}", json={"name": "newest", "method": "latest", "framework_id": fw})
        replaced = r.json()["rule"]
        finished(c, r)
        r = c.delete(f"/v1/mastery/rules/{rule_id}")
        finished(c, r)
    deleted = orjson.loads(api.store.records.get_json(T, "mastery_rule", uuid.UUID(rule_id)))
    authors = {created["updated_by"], replaced["updated_by"], deleted["updated_by"]}
    assert len(authors) == 1 and next(iter(authors)).startswith("client:")
    log = [row for row in api.store.records.changes_since(T, seq, 100000) if row["record_kind"] == "mastery_rule"]
    assert [row["op"] for row in log] == ["created", "updated", "deleted"]
    # each row names the version it wrote, and that version names its author
    free = _free_form_dicts(MasteryRule)
    versions = [record_digest(MasteryRule.model_validate(v), free)[0] for v in (created, replaced, deleted)]
    assert [row["content_hash"] for row in log] == versions


def test_the_rule_book_sets_one_rule_per_scope(api: Api, district: dict) -> None:
    book = RuleBook(engine_of(api.store))
    rule, created = book.set(T, {"name": "a", "method": "highest"}, by="cli:test")
    assert created and rule.updated_by == "cli:test"
    again, created = book.set(T, {"name": "b", "method": "latest"}, by="cli:other")
    assert not created and again.id == rule.id and again.updated_by == "cli:other"
    assert [r.name for r in book.active(T)] == ["b"]
    assert isinstance(book.delete(T, again.id, by="cli:test"), MasteryRule)  # type: ignore[arg-type]
    assert book.active(T) == []
    job = recomputes_of(book.engine).start(T, None, reason="test")
    assert recomputes_of(book.engine).wait(job.id).status == "done"


def test_cli_rules_list_set_delete(cli, tmp_path) -> None:
    from gateway.wiring import open_store

    cli("migrate")
    store = open_store(cli.url)
    w = make_world(store)
    store.dispose()
    fw = str(w["fw"].id)
    res = cli("mastery", "rules", "set", "--tenant", T, "--name", "best", "--method", "highest", "--framework", fw)
    assert "created rule" in res.output and "1 learners" in res.output
    listed = cli("mastery", "rules", "list", "--tenant", T).output
    assert "best" in listed and "highest" in listed and "cli:" in listed
    res = cli("mastery", "rules", "set", "--tenant", T, "--name", "newest", "--method", "latest", "--framework", fw,
              "--kind-weight", "assessment=2")
    assert "replaced rule" in res.output
    store = open_store(cli.url)
    try:
        (rule,) = RuleBook(engine_of(store)).active(T)
        assert rule.name == "newest" and rule.kind_weights and rule.updated_by and rule.updated_by.startswith("cli:")
        state = engine_of(store).store.records.get(T, "mastery_state", state_id_of(w))
        assert state.method.value == "latest"  # type: ignore[attr-defined]
    finally:
        store.dispose()
    with pytest.raises(ValidationError, match="cannot exceed"):  # `tessera` (gateway.cli.main) prints it, exit code 1
        cli("mastery", "rules", "set", "--tenant", T, "--name", "x", "--method", "n_of_m", "--n", "3", "--m", "2", "--at-level", "3")
    with pytest.raises(NotFound):
        cli("mastery", "rules", "delete", str(uuid.uuid4()), "--tenant", T)
    assert cli("mastery", "rules", "delete", "not-an-id", "--tenant", T, code=None).exit_code != 0
    res = cli("mastery", "rules", "delete", str(rule.id), "--tenant", T)
    assert "deleted rule" in res.output
    assert "newest" not in cli("mastery", "rules", "list", "--tenant", T).output
    store = open_store(cli.url)
    try:
        state = store.records.get(T, "mastery_state", state_id_of(w))
        assert state.method.value not in ("latest",)  # type: ignore[attr-defined]
        deleted = store.records.get(T, "mastery_rule", rule.id)  # type: ignore[arg-type]
        assert deleted.status.value == "tobedeleted" and deleted.updated_by.startswith("cli:")  # type: ignore[attr-defined]
    finally:
        store.dispose()


def make_world(store: Any) -> dict:
    from datetime import UTC, datetime, timedelta

    school = f.org()
    kid = f.person("u1", school)
    fw = f.framework("math")
    a = f.competency("NBT.1", fw)
    store.records.apply(T, [school, kid, fw, a])
    day = datetime(2026, 9, 1, tzinfo=UTC)
    store.records.apply(T, [f.evidence(f"e{i}", kid, a, raw=r, observed_at=day + timedelta(days=i)) for i, r in enumerate((10, 2))])
    return {"kid": kid, "fw": fw, "A": a}


def state_id_of(w: dict) -> uuid.UUID:
    from gateway.mastery.engine import state_id

    return state_id(T, w["kid"].id, w["A"].id)
