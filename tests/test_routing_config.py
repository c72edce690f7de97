"""gateway.yaml's connections and routes: every problem with its line and column (YAML,
JSON Schema, semantic checks), env: secrets, and applying the file to the store (upsert
by name, removed entries disabled but kept) on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.model import utcnow
from gateway.routing import config as rc
from gateway.routing import manage, repository
from gateway.store import Store
from gateway.store import tables as t
from tests.routing_fake import fake_wiring

ENV = {"SIS_ID": "id", "SIS_SECRET": "very-secret", "HOOK_KEY": "k"}

GOOD = """\
tenant: district-a
connections:
  - name: sis
    role: fake.source
    base_url: https://sis.example.org/ims/oneroster/rostering/v1p2
    auth:
      client_id: env:SIS_ID
      client_secret: env:SIS_SECRET
    options: {timeout: 30, retries: 5, breaker_failures: 5, breaker_seconds: 60}
  - name: lms
    role: fake.sink
    adapter: fake
    base_url: https://lms.example.org
    options:
      signing_key: env:HOOK_KEY
routes:
  - name: roster-in
    mode: pull
    source: sis
    kinds: [org, academic_session, course, section, person, enrollment]
    orgs: [district-1]
    schedule: 15m
  - name: people-out
    mode: push
    destination: lms
    kinds: [person, fake.thing]
    mapping: mastery.yaml
"""


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    _, found = rc.read(write(tmp_path, text), fake_wiring(installed=False), ENV if env is None else env)
    return [str(p) for p in found]


def without_builtin_roles(found: list[str]) -> list[str]:
    """The gateway's own roles (``webhook``) leave the fake adapter's role list longer."""
    return [p.replace(", webhook", "") for p in found]


def test_a_good_file_reads_whole(tmp_path: Path) -> None:
    from tests.routing_fake import FakeSink

    built, closed = FakeSink.built, FakeSink.closed  # class-wide counts: other tests in this process add to them
    config, found = rc.read(write(tmp_path, GOOD), fake_wiring(), ENV)
    assert found == [] and config is not None
    assert (FakeSink.built - built, FakeSink.closed - closed) == (1, 1)  # built once to learn what it does, then closed
    sis, lms = config.connections
    assert (sis.tenant, sis.adapter, sis.system, dict(sis.auth)["client_secret"]) == ("district-a", "fake", "sis", "env:SIS_SECRET")
    assert sis.options["retries"] == 5
    pull, push = config.routes
    assert pull.schedule_seconds == 900 and pull.orgs == ("district-1",) and pull.source == "sis" and pull.destination is None
    assert push.kinds == ("person", "fake.thing") and push.mapping == "mastery.yaml" and push.schedule_seconds is None


def test_yaml_errors_have_their_line_and_column(tmp_path: Path) -> None:
    assert problems(tmp_path, "connections:\n  - name: [sis\n    role: x\n") == [
        "3:9: not valid YAML: expected ',' or ']', but got ':'"]
    found = problems(tmp_path, "connections:\n  - name: a\n    role: fake.sink\n    name: b\n")
    assert found == ["4:5: 'name' is given twice in this mapping"]


def test_schema_errors_have_their_line_and_column(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        connections:
          - name: sis
            role: fake.source
            auth:
              client_secret: hunter2
            options: {timeout: 0, retries: 2.5}
            colour: blue
          - role: fake.sink
        routes:
          - name: r
            mode: sideways
            source: sis
            kinds: []
            schedule: 15 minutes
        """)
    assert found == [
        "5:22: connections[0].auth.client_secret: client_secret: a secret is never written in gateway.yaml; reference an environment variable as env:NAME",
        "6:24: connections[0].options.timeout: 0 is less than or equal to the minimum of 0",
        "6:36: connections[0].options.retries: 2.5 is not of type 'integer'",
        "7:5: unknown key 'colour'; allowed: adapter, auth, base_url, name, options, role, system, tenant",
        "8:5: connections[1]: 'name' is a required property",
        "11:11: routes[0].mode: 'sideways' is not one of ['pull', 'push']",
        "13:12: routes[0].kinds: [] should be non-empty",
        "14:15: routes[0].schedule: schedule '15 minutes': give seconds (900) or a duration such as 30s, 15m, 1h, 1d, 1h30m",
    ]
    assert "hunter2" not in " ".join(found)


def test_semantic_errors_have_their_line_and_column(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        connections:
          - name: sis
            role: fake.source
            auth: {client_secret: env:NOT_SET_ANYWHERE}
          - name: lms
            role: lti.ags.nobody
          - name: sink
            role: fake.sink
            adapter: oneroster
            options: {password: plain}
          - name: sis
            role: fake.sink
        routes:
          - name: r1
            mode: pull
            destination: sis
            kinds: [person, pets]
          - name: r2
            mode: push
            destination: sis
            kinds: [person]
            schedule: 60
          - name: r3
            mode: pull
            source: nowhere
            kinds: [org]
          - name: r3
            mode: push
            destination: sink
            kinds: [evidence]
            mapping: no-such-mapping.yaml
        """, env={})
    assert without_builtin_roles(found) == [
        "4:27: auth 'client_secret': the environment variable NOT_SET_ANYWHERE is not set",
        "6:11: unknown connection role 'lti.ags.nobody'; known: fake.both, fake.sink, fake.source",
        "9:14: adapter 'oneroster' does not declare role 'fake.sink' (adapter 'fake' does)",
        "10:25: option 'password' looks like a secret: reference an environment variable as env:NAME",
        "11:11: connection 'sis' is declared twice for tenant 'default'",
        "14:5: a pull route needs a source connection",
        "16:18: a pull route has no destination (this Tessera's store is where it writes)",
        "17:21: unknown record kind 'pets'; known: academic_session, alignment, competency, course, enrollment, evidence, "
        "fake.thing, framework, learning_plan, mastery_rule, mastery_state, org, person, proficiency_scale, relation, section",
        "20:18: connection 'sis' (role fake.source) cannot be delivered to",
        "22:15: a push route delivers on change and has no schedule",
        "25:13: no connection 'nowhere' for tenant 'default' in this file",
        "27:11: route 'r3' is declared twice for tenant 'default'",
        # sink's adapter is wrong, so its role object is unknown: no kinds check for it
        "31:14: no mapping file 'no-such-mapping.yaml' (under mappings/ or next to this file)",
    ]


def test_a_push_route_carries_only_what_its_destination_delivers(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        connections: [{name: sink, role: fake.sink}, {name: src, role: fake.source, options: {refuse: true}}]
        routes: [{name: r, mode: push, destination: sink, kinds: [person, evidence]}]
        """)
    assert found == ["1:46: connection 'src': option refuse is set",
                     "2:67: connection 'sink' does not deliver 'evidence'; it delivers: fake.thing, org, person"]


def test_no_roles_installed_says_so(tmp_path: Path) -> None:
    from gateway.wiring import Wiring

    nothing = Wiring.of(installed=False)
    nothing.__dict__["routing_roles"] = {}  # not even the gateway's own
    _, found = rc.read(write(tmp_path, "connections: [{name: a, role: x.y}]\n"), nothing, {})
    assert [str(p) for p in found] == ["1:31: unknown connection role 'x.y'; known: none: no installed adapter declares a connection role"]


def test_load_raises_one_error_listing_every_problem_with_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "connections: [{name: a, role: x.y}, {name: b}]\n")
    with pytest.raises(rc.GatewayConfigError) as info:
        rc.load(path, fake_wiring(), {})
    assert [str(e) for e in info.value.errors] == [f"{path}:1:37: connections[1]: 'role' is a required property"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TESSERA_CONFIG", raising=False)
    assert rc.config_path() == Path("gateway.yaml")
    monkeypatch.setenv("TESSERA_CONFIG", str(tmp_path / "other.yaml"))
    with pytest.raises(ConfigError, match="no configuration file"):
        rc.config_path()
    (tmp_path / "gateway.yaml").unlink()
    monkeypatch.delenv("TESSERA_CONFIG")
    assert rc.config_path() is None and rc.load(None, fake_wiring()) is None


def test_unknown_top_level_keys_are_named_with_a_suggestion(tmp_path: Path) -> None:
    assert problems(tmp_path, "log_level: INFO\nroute: []\ndatabase_ur: sqlite://\n") == [
        "2:1: unknown key 'route'; did you mean 'routes'?", "3:1: unknown key 'database_ur'; did you mean 'database_url'?"]
    assert problems(tmp_path, "gateway: {log_level: INFO, colour: red}\nroutes: []\nlog_level: DEBUG\n") == [
        "1:28: unknown key 'colour' (the settings are in the README's Configuration)",
        "3:1: 'log_level' is a setting: with a 'gateway:' section, it goes there (here it is ignored)"]


def test_schedules() -> None:
    assert [rc.schedule_seconds(v) for v in (None, 30, "45", "30s", "15m", "1h", "1d", "1h30m")] == [
        None, 30, 45, 30, 900, 3600, 86400, 5400]
    with pytest.raises(ConfigError):
        rc.schedule_seconds("soon")


def test_settings_still_load_from_a_file_with_routing_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_CONFIG", str(write(tmp_path, "log_level: DEBUG\n" + GOOD)))
    assert load_settings().log_level == "DEBUG"


# --- applying the file -------------------------------------------------------------------------


def applied(store: Store, tmp_path: Path, text: str, name: str = "gateway.yaml") -> manage.ApplyReport:
    config = rc.load(write(tmp_path, text, name), fake_wiring(), ENV)
    assert config is not None
    return manage.apply_config(store, config)


def routes_by_name(store: Store) -> dict[str, dict]:
    return {r["name"]: r for r in manage.list_route_views(store)[0]}


def test_apply_upserts_by_name_and_disables_what_the_file_drops(store: Store, tmp_path: Path) -> None:
    report = applied(store, tmp_path, GOOD)
    assert sorted(report.created) == ["connection district-a/lms", "connection district-a/sis",
                                      "route district-a/people-out", "route district-a/roster-in"]
    routes = routes_by_name(store)
    assert routes["roster-in"]["origin"] == "config" and routes["roster-in"]["schedule_seconds"] == 900
    assert routes["roster-in"]["next_run_at"] is not None and routes["people-out"]["next_run_at"] is None
    pull = repository.find_route(store, "roster-in")
    assert pull.source is not None and pull.source.auth["client_id"] == "env:SIS_ID" and pull.orgs == ("district-1",)
    assert [r.name for r in repository.routes_due(store)] == ["roster-in"]
    assert repository.claim_due(store, pull.id) is True and repository.claim_due(store, pull.id) is False
    assert repository.routes_due(store) == []

    again = applied(store, tmp_path, GOOD)
    assert not again.changed and len(again.unchanged) == 4

    # people-out leaves the file, roster-in changes; lms leaves too (its route with it)
    smaller = GOOD.split("  - name: lms")[0] + "routes:\n" + GOOD.split("routes:\n")[1].split("  - name: people-out")[0]
    smaller = smaller.replace("schedule: 15m", "schedule: 1h")
    report = applied(store, tmp_path, smaller)
    assert report.updated == ["route district-a/roster-in"] and report.disabled == ["district-a/people-out"]
    assert report.retired_connections == ["district-a/lms"]
    routes = routes_by_name(store)
    assert routes["people-out"]["enabled"] is False and routes["roster-in"]["schedule_seconds"] == 3600
    assert {c["name"] for c in manage.list_connections(store)[0]} == {"sis", "lms"}  # kept: history stays

    # declared again: enabled again
    report = applied(store, tmp_path, GOOD)
    assert sorted(report.updated) == ["route district-a/people-out", "route district-a/roster-in"]
    assert routes_by_name(store)["people-out"]["enabled"] is True


def test_api_routes_stay_and_a_declared_name_is_adopted(store: Store, tmp_path: Path) -> None:
    wiring = fake_wiring()
    manage.create_connection(store, wiring, "district-a", {"name": "other", "role": "fake.sink"})
    made = manage.create_route(store, wiring, "district-a", {"name": "mine", "mode": "push", "destination": "other", "kinds": ["org"]})
    manage.create_connection(store, wiring, "district-a", {"name": "lms", "role": "fake.sink", "base_url": "https://old.example.org"})
    report = applied(store, tmp_path, GOOD)
    assert report.adopted == ["connection district-a/lms"]
    routes = routes_by_name(store)
    assert routes["mine"]["enabled"] is True and routes["mine"]["origin"] == "api"  # the file never disables API routes
    lms = {c["name"]: c for c in manage.list_connections(store, "district-a")[0]}["lms"]
    assert lms["origin"] == "config" and lms["base_url"] == "https://lms.example.org"
    # the API may not change what the file declares
    from gateway.errors import Conflict

    with pytest.raises(Conflict, match="gateway.yaml"):
        manage.update_connection(store, wiring, "district-a", uuid.UUID(lms["id"]), {"base_url": "https://x.example.org"})
    with pytest.raises(Conflict, match="gateway.yaml"):
        manage.delete_route(store, "district-a", uuid.UUID(routes["roster-in"]["id"]))
    assert made["origin"] == "api"


def test_a_file_without_routing_keys_changes_nothing(store: Store, tmp_path: Path) -> None:
    applied(store, tmp_path, GOOD)
    report = applied(store, tmp_path, "log_level: INFO\n", "settings-only.yaml")
    assert not report.changed and all(r["enabled"] for r in routes_by_name(store).values())
    report = applied(store, tmp_path, "connections: []\nroutes: []\n", "empty.yaml")
    assert sorted(report.disabled) == ["district-a/people-out", "district-a/roster-in"]


def test_dead_letters_replay_and_discard_keep_tenants_apart(store: Store, tmp_path: Path) -> None:
    applied(store, tmp_path, GOOD)
    push = repository.find_route(store, "people-out", tenant="district-a")
    now = utcnow()
    with store.engine.begin() as conn:
        for n in range(3):
            conn.execute(insert(t.outbox).values(tenant="district-a", route_id=push.id, record_kind="person", record_id=uuid.uuid4(),
                                                 content_hash=str(n), idempotency_key=f"k{n}", state="dead", attempts=7,
                                                 next_attempt_at=now, created_at=now, dead_at=now, lease_owner="w1"))
    assert repository.replay_dead_letters(store, "other-tenant") == 0
    items, _ = repository.list_dead_letters(store, "district-a")
    assert repository.replay_dead_letters(store, "district-a", ids=[items[0]["id"]]) == 1
    assert repository.discard_dead_letters(store, "district-a", route_id=push.id) == 2
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.outbox.c.state, t.outbox.c.attempts, t.outbox.c.lease_owner).order_by(t.outbox.c.id)).all()
    assert [tuple(r) for r in rows] == [("pending", 0, None), ("discarded", 7, "w1"), ("discarded", 7, "w1")]


# --- the documented example ---------------------------------------------------------------------


def _docs_example() -> str:
    text = (Path(__file__).resolve().parent.parent / "docs" / "routing.md").read_text(encoding="utf-8")
    start = text.index("```yaml\ntenant: district-a\n\nconnections:")
    return text[start + len("```yaml\n"):text.index("```", start + 8)]


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    """docs/routing.md's eight routes pass the schema and the checks: with the installed
    adapters once every role it names is installed, and with stand-ins for them until then."""
    from gateway.wiring import Wiring
    from gateway.wiring import default as installed
    from tests.routing_fake import FakeBoth

    text = _docs_example()
    path = write(tmp_path, text)
    env = dict.fromkeys(re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", text), "x")
    roles = ("oneroster.rest.client", "oneroster.gradebook", "case.client", "xapi.lrs", "lti.ags", "tessera", "webhook")

    class AnyKind(FakeBoth):
        kinds = frozenset()  # carries every kind

    class Everything:
        name = "everything"
        routing_kinds = ("xapi.statement",)

    standins = Wiring.of(Everything(), installed=False)
    standins.__dict__["routing_roles"] = dict.fromkeys(roles, ("everything", AnyKind))
    config, found = rc.read(path, standins, env)
    assert [str(p) for p in found] == [] and config is not None
    assert len(config.connections) == 7 and len(config.routes) == 8
    if set(roles) <= set(installed().routing_roles):
        _, found = rc.read(path, installed(), env)
        assert [str(p) for p in found] == []


def test_workers_starting_together_apply_the_file_once(store: Store, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    config = rc.load(write(tmp_path, GOOD), fake_wiring(), ENV)
    assert config is not None
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: manage.apply_config(store, config), range(4)))
    assert sum(len(r.created) for r in reports) == 4  # each entry created by exactly one of them
    assert len(manage.list_connections(store)[0]) == 2 and len(routes_by_name(store)) == 2


def test_stalled_and_overdue_routes_are_never_silent(store: Store, tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    applied(store, tmp_path, GOOD)
    now = utcnow()
    health = {h.name: h for h in repository.route_health(store, now=now)}
    assert health["roster-in"].status == "ok" and health["people-out"].status == "ok"  # due now: not late yet
    pull = repository.find_route(store, "roster-in")
    push = repository.find_route(store, "people-out")
    with store.engine.begin() as conn:
        conn.execute(update(t.routes).where(t.routes.c.id == pull.id).values(next_run_at=now - timedelta(minutes=14)))
        conn.execute(insert(t.outbox).values(tenant="district-a", route_id=push.id, record_kind="person", record_id=uuid.uuid4(),
                                             content_hash="h", idempotency_key="k", state="pending", attempts=2,
                                             next_attempt_at=now, created_at=now - timedelta(minutes=10)))
    health = {h.name: h for h in repository.route_health(store, now=now)}
    assert health["roster-in"].status == "ok" and health["people-out"].status == "ok"  # within one interval / 15 minutes
    later = now + timedelta(minutes=6)
    health = {h.name: h for h in repository.route_health(store, now=later)}
    assert health["roster-in"].status == "overdue" and 1190 <= health["roster-in"].overdue_seconds <= 1210
    assert health["people-out"].status == "stalled" and health["people-out"].as_dict()["pending"] == 1


def test_the_schema_is_package_data_read_through_importlib_resources() -> None:
    """``tessera config check`` from an installed wheel: the schema is read from the package
    (importlib.resources), and pyproject's package-data puts the file in the wheel."""
    import fnmatch
    import tomllib
    from importlib.resources import files

    from gateway import PROJECT_ROOT
    from gateway.routing import config as cfg

    resource = files("gateway.routing") / cfg.SCHEMA_RESOURCE
    assert resource.is_file()
    cfg.schema.cache_clear()
    assert cfg.schema()["$defs"]["connection"]["properties"]["options"]["properties"]["batch_size"]["maximum"] == 1000
    globs = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gateway"]
    assert any(fnmatch.fnmatch(f"routing/{cfg.SCHEMA_RESOURCE}", g) for g in globs)
