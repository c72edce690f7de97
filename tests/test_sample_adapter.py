"""The adapter protocol end to end: a sample adapter (``tests/sample_adapter``) adds a scope, a
setting, a router, a CLI command and a migration without touching ``gateway/``, wired
programmatically (``Wiring.of``, ``install``), never through entry points."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect

from gateway import wiring
from gateway.auth import ClientStore
from gateway.auth.scopes import SCOPES, expand
from gateway.config import Settings

from .conftest import serve
from .sample_adapter import SampleAdapter, SampleSettings


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> Iterator[wiring.Wiring]:
    """The installed adapters and the sample one, as the process's wiring for one test."""
    from gateway.cli import app, export_app, import_app, register_adapters

    register_adapters()  # the installed adapters' commands, once per process
    adapter = SampleAdapter()
    wired = wiring.Wiring.of(adapter)
    previous = wiring.install(wired)
    groups = list(app.registered_groups)
    wiring.Wiring.of(adapter, installed=False).register_cli(app, import_app, export_app)  # its commands only
    try:
        yield wired
    finally:
        app.registered_groups[:] = groups
        wiring.install(previous)


def test_the_sample_scope_is_declared_and_its_token_calls_the_router(sample: wiring.Wiring, tmp_path: Path) -> None:
    assert "sample.read" in SCOPES and expand(["sample.read"]) == {"sample.read"}
    url = f"sqlite:///{tmp_path / 'sample.db'}"
    store = sample.open_store(url)
    store.migrate()
    from gateway.api.app import create_app

    clients = ClientStore(store.engine)
    allowed, allowed_secret = clients.create("t1", ["sample.read"])
    other, other_secret = clients.create("t1", ["evidence.readonly"])
    with serve(create_app(Settings(database_url=url), store=store, wiring=sample)) as base:

        def token(cid: str, secret: str) -> str:
            r = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
            assert r.status_code == 200, r.text
            return r.json()["access_token"]

        ok = httpx.get(f"{base}/sample/hello", headers={"Authorization": f"Bearer {token(allowed.client_id, allowed_secret)}"})
        assert ok.status_code == 200 and ok.json() == {"greeting": "hello", "tenant": "t1"}
        refused = httpx.get(f"{base}/sample/hello", headers={"Authorization": f"Bearer {token(other.client_id, other_secret)}"})
        assert refused.status_code == 403
        assert httpx.get(f"{base}/readyz").status_code == 200  # the sample branch counts in readiness
    store.dispose()


def test_the_setting_is_read_from_the_adapters_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_SAMPLE__GREETING", "kia ora")
    assert wiring.Wiring.of(SampleAdapter(), installed=False).settings("sample").greeting == "kia ora"


def test_the_former_setting_name_still_works_with_a_deprecation_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESSERA_SAMPLE__GREETING", raising=False)
    monkeypatch.setenv("TESSERA_SAMPLE_GREETING", "bonjour")
    with pytest.warns(DeprecationWarning, match="TESSERA_SAMPLE_GREETING is deprecated: set TESSERA_SAMPLE__GREETING"):
        assert SampleSettings().greeting == "bonjour"
    monkeypatch.setenv("TESSERA_SAMPLE__GREETING", "new wins")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SampleSettings().greeting == "new wins"


def test_migrate_creates_the_adapters_table_and_its_cli_command_runs(sample: wiring.Wiring, cli: Any) -> None:
    cli("migrate")
    store = wiring.open_store(cli.url)
    assert "sample_notes" in inspect(store.engine).get_table_names()
    assert "sample_0001" in store.migrations.head_revisions() and store.ping()
    store.dispose()
    assert "noted for t1" in cli("sample", "notes", "add", "hello there", "--tenant", "t1").output
    assert "hello there" in cli("sample", "notes", "list").output


def test_a_store_opened_without_the_wiring_derives_no_mastery_and_says_so(tmp_path: Path) -> None:
    from gateway.errors import ConfigError
    from gateway.mastery.attach import engine_of
    from gateway.store import Store

    bare = Store.from_url(f"sqlite:///{tmp_path / 'bare.db'}")
    with pytest.raises(ConfigError, match="open it with gateway.wiring.open_store"):
        engine_of(bare)
    assert bare.evidence_listeners == []
    wired = wiring.open_store(f"sqlite:///{tmp_path / 'bare.db'}")
    assert engine_of(wired).on_evidence in wired.evidence_listeners
    bare.dispose()
    wired.dispose()
