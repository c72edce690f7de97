"""Sign-in links (``tessera console link``): the way into the console without an LMS or an
identity provider. The CLI and the server derive the same secret from the database's
signing key, so a link printed by one works on the other."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from gateway.config import Settings
from gateway.console.links import make_token, read_token
from gateway.errors import ValidationError

from .conftest import serve


def test_a_printed_link_signs_an_administrator_in_once_the_button_is_pressed(cli) -> None:  # type: ignore[no-untyped-def]
    from gateway.api.app import create_app

    cli("migrate")
    printed = cli("console", "link", "--tenant", "district-a", "--name", "Ada Admin", "--next", "/console/admin").output
    url = re.search(r"(http://\S+/console/sign-in/link\?token=\S+)", printed.replace("\n", "")).group(1)
    token = url.split("token=", 1)[1]
    with serve(create_app(Settings(database_url=cli.url))) as base, httpx.Client(base_url=base, follow_redirects=False) as c:
        # opening the link signs nobody in (a link preview or a mail scanner fetches it too)
        page = c.get(f"/console/sign-in/link?token={token}")
        assert page.status_code == 200 and "Ada Admin" in page.text and "district-a" in page.text
        assert "tessera_console" not in page.headers.get("set-cookie", "")
        assert c.get("/console").status_code == 303 and "sign-in" in c.get("/console").headers["location"]
        done = c.post("/console/sign-in/link", data={"token": httpx.QueryParams(f"t={token}")["t"]})
        assert done.status_code == 303 and done.headers["location"] == "/console/admin"
        assert "HttpOnly" in done.headers["set-cookie"] and "tessera_console=" in done.headers["set-cookie"]
        assert c.get("/console/admin").status_code == 200
        # a token signed with another secret, or altered, is refused with a page that says so
        forged = make_token(b"not the server's secret", tenant="district-a", role="admin", person_id=None, name="x")
        for bad in (forged, token[:-2] + "xx"):
            r = httpx.post(f"{base}/console/sign-in/link", data={"token": bad}, follow_redirects=False)
            assert r.status_code == 422 and "not valid or has expired" in r.text
            assert "tessera_console=" not in r.headers.get("set-cookie", "")


def test_a_link_names_a_person_for_every_role_but_admin_and_expires() -> None:
    secret = b"s" * 32
    with pytest.raises(ValueError, match="needs their roster person id"):
        make_token(secret, tenant="t", role="teacher", person_id=None, name="T")
    with pytest.raises(ValueError, match="role must be one of"):
        make_token(secret, tenant="t", role="root", person_id=None, name="T")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="minutes"):
        make_token(secret, tenant="t", role="admin", person_id=None, name="T", minutes=0)
    pid = uuid.uuid4()
    viewer, landing = read_token(secret, make_token(secret, tenant="t", role="learner", person_id=pid, name="L",
                                                    next_url="https://evil.example/console"))
    assert (viewer.tenant, viewer.role, viewer.person_id, viewer.via, landing) == ("t", "learner", pid, "link", "/console")
    expired = make_token(secret, tenant="t", role="admin", person_id=None, name="A", minutes=1)
    real = time.time
    try:
        time.time = lambda: real() + 61  # type: ignore[assignment]
        with pytest.raises(ValidationError, match="expired"):
            read_token(secret, expired)
    finally:
        time.time = real  # type: ignore[assignment]


def test_the_cli_refuses_a_link_without_the_person_it_needs(cli) -> None:  # type: ignore[no-untyped-def]
    cli("migrate")
    with pytest.raises(ValidationError, match="--person"):  # `tessera` prints it as "error: ..." and exits 1
        cli("console", "link", "--tenant", "district-a", "--role", "learner", code=None)
