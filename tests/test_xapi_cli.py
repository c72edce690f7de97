"""``tessera lrs credentials create|list|revoke`` and the HTTP Basic credentials they make."""

from __future__ import annotations

import re

import httpx

from gateway.config import Settings
from gateway.wiring import open_store
from tests.conftest import serve
from tests.xapi_support import V1, statement


def test_credentials_create_list_revoke_and_use(cli) -> None:
    cli("migrate")
    out = cli("lrs", "credentials", "create", "--tenant", "district-9", "--scopes", "statements/write statements/read").output
    key = re.search(r"key:\s+(\S+)", out).group(1)
    secret = re.search(r"secret:\s+(\S+)", out).group(1)
    assert "xapi/statements/write" in out
    listed = cli("lrs", "credentials", "list").output
    assert key in listed and secret not in listed

    from gateway.api.app import create_app

    store = open_store(cli.url)
    try:
        with serve(create_app(Settings(database_url=cli.url), store=store)) as base:
            r = httpx.post(base + "/xapi/statements", json=statement(), headers=V1, auth=(key, secret))
            assert r.status_code == 200, r.text
            cli("lrs", "credentials", "revoke", key)
            fresh = create_app(Settings(database_url=cli.url), store=store)  # no verified-secret cache yet
        with serve(fresh) as base:
            assert httpx.get(base + "/xapi/statements", headers=V1, auth=(key, secret)).status_code == 401
    finally:
        store.dispose()


def test_unknown_scope_is_refused(cli) -> None:
    cli("migrate")
    result = cli("lrs", "credentials", "create", "--tenant", "t", "--scopes", "statements/everything", code=None)
    assert result.exit_code != 0
