"""End to end: `tessera migrate`, `clients create` and `serve` as real processes, called over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from gateway import devserver

from .factories import roster

pytestmark = pytest.mark.e2e


def tessera(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([devserver.tessera_exe(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=True)


def test_the_real_server_answers_over_http(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "TESSERA_DATABASE_URL": db_url, "TESSERA_LOG_FORMAT": "json"}
    tessera("migrate", env=env, cwd=tmp_path)
    created = tessera("clients", "create", "--tenant", "district-a", "--scopes", "roster.readonly records.write", env=env, cwd=tmp_path).stdout
    client_id = re.search(r"client_id:\s+(\S+)", created).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", created).group(1)

    server = devserver.start(env, tmp_path, ready="/healthz", timeout=30)
    base = server.base_url
    try:
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        assert httpx.get(f"{base}/v1/people").status_code == 401

        tok = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert tok.status_code == 200, tok.text
        headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}

        batch = [r.model_dump(mode="json") for r in roster(3, tenant="district-a")]
        r = httpx.post(f"{base}/v1/batches", json={"records": batch}, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["created"] == len(batch)

        people = httpx.get(f"{base}/v1/people", params={"limit": 2}, headers=headers)
        assert people.status_code == 200
        assert len(people.json()["items"]) == 2 and people.json()["next_cursor"]
        assert 'rel="next"' in people.headers["link"]
        assert people.headers["x-request-id"]

        spec = httpx.get(f"{base}/openapi.json").json()
        assert "/v1/people" in spec["paths"] and "/oauth/token" in spec["paths"] and "/ndjson/records" in spec["paths"]
    finally:
        server.stop()
    lines = server.log().splitlines()
    access = [ln for ln in lines if '"logger":"tessera.access"' in ln]
    assert access and all('"request_id"' in ln for ln in access)
    assert secret not in "\n".join(lines)
