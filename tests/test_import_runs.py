"""Import runs: each ``tessera import`` is kept with its counts and its errors (file, row,
field), applied or refused, and the console's integrator pages list them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.console.web import COOKIE, Viewer
from gateway.errors import ErrorDetail, ValidationError
from gateway.store import Store
from gateway.store.imports import MAX_ERRORS, shown
from gateway.wiring import open_store

from .conftest import serve

ORG = {"kind": "org", "source": "sis", "native_id": "d1", "name": "Cedar Valley", "type": "district"}


def test_a_cli_import_is_kept_with_its_counts_and_a_refused_one_with_its_errors(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gateway.api.app import create_app

    cli("migrate")
    good = tmp_path / "orgs.ndjson"
    good.write_text(json.dumps(ORG) + "\n")
    cli("import", "ndjson", str(good), "--tenant", "t1")
    bad = tmp_path / "broken.ndjson"
    bad.write_text(json.dumps({**ORG, "native_id": "d2"}) + "\n" + json.dumps({"kind": "org", "source": "sis", "native_id": "d3"}) + "\n")
    with pytest.raises(ValidationError):
        cli("import", "ndjson", str(bad), "--tenant", "t1")
    store = open_store(cli.url)
    try:
        runs = store.imports.recent("t1")
        assert [r["status"] for r in runs] == ["failed", "succeeded"]
        failed, done = runs
        assert (done["source"], done["what"], done["via"], done["created"], done["errors"]) == ("ndjson", str(good), "cli", 1, [])
        assert failed["created"] == 0 and failed["message"] and failed["errors"]
        assert any("broken.ndjson" in e["location"] and "line 2" in e["location"] for e in failed["errors"]), failed["errors"]
        # refused: the store is unchanged (d2 of the refused file was not applied)
        assert store.records.page("t1", "org", limit=10).items and len(store.records.page("t1", "org", limit=10).items) == 1
        assert store.imports.recent("t2") == []  # tenants see their own

        app = create_app(Settings(database_url=cli.url), store=store)
        with serve(app) as base, httpx.Client(base_url=base) as c:
            viewer = Viewer(tenant="t1", role="admin", person_id=None, name="Ada", via="test")
            c.cookies.set(COOKIE, app.state.console.codec.dumps(viewer), domain="127.0.0.1", path="/console")
            page = c.get("/console/admin/imports")
            assert page.status_code == 200
            assert "Tessera records (NDJSON): " + str(bad) in page.text and "broken.ndjson" in page.text and "Failed" in page.text
            assert str(good) in page.text
            overview = c.get("/console/admin")
            assert "Imports with errors" in overview.text
    finally:
        store.dispose()


def test_runs_keep_at_most_max_errors_and_never_a_urls_credentials(store: Store) -> None:
    with pytest.raises(ValidationError):
        with store.imports.track("t1", "oneroster.rest", "https://user:pw@sis.example/ims/oneroster?token=abc"):
            raise ValidationError("refused", errors=[ErrorDetail(f"bad {i}", location=f"users.csv row {i}", field="givenName")
                                                     for i in range(MAX_ERRORS + 50)])
    (run,) = store.imports.recent("t1")
    assert run["what"] == "https://sis.example/ims/oneroster" and "pw" not in run["what"] and "abc" not in run["what"]
    assert len(run["errors"]) == MAX_ERRORS and run["errors"][0] == {"message": "bad 0", "location": "users.csv row 0",
                                                                      "field": "givenName"}
    assert store.imports.failed_count("t1") == 1 and store.imports.failed_count("t2") == 0
    # an import interrupted by anything else is kept as failed too, and the error goes on
    with pytest.raises(KeyboardInterrupt):
        with store.imports.track("t1", "case", "framework.json"):
            raise KeyboardInterrupt
    assert store.imports.recent("t1", limit=1)[0]["message"] == "the import stopped: KeyboardInterrupt"
    assert shown("/data/roster.zip") == "/data/roster.zip" and shown("http://h:8080/x?y=1") == "http://h:8080/x"
    assert uuid.UUID(str(run["id"]))
