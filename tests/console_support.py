"""Shared by the console's tests: a real ``tessera serve`` with the demo data on a free
port (``console_site``), a headless Chromium driven by Playwright (``browser``), sessions
minted for any role (``ConsoleSite.cookie``), and the accessibility check (``assert_accessible``).

A test module imports the fixtures it uses::

    from .console_support import ConsoleSite, browser, console_site, assert_accessible  # noqa: F401

The site is shared by every test of one module (one server, one demo database): tests
that change data use their own records or undo what they do. Chromium is Debian's
(``/usr/bin/chromium``, installed by ``.ci/run``); without it the browser tests skip,
unless ``TESSERA_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway import devserver
from gateway.console.web import COOKIE, SessionCodec, Viewer

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
SECRET = "console-tests-" + uuid.uuid4().hex
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


@dataclass
class ConsoleSite:
    """A real server with the demo tenant (``demo``) loaded."""

    base_url: str
    db_path: Path
    env: dict[str, str]
    tmp: Path
    codec: SessionCodec = field(init=False)

    def __post_init__(self) -> None:
        self.codec = SessionCodec(SECRET.encode(), max_age_seconds=480 * 60)

    # --- sessions -----------------------------------------------------------------------------

    def viewer(self, role: str, person_id: uuid.UUID | str | None = None, *, tenant: str = "demo", name: str = "Test") -> Viewer:
        pid = uuid.UUID(str(person_id)) if person_id else None
        return Viewer(tenant=tenant, role=role, person_id=pid, name=name, via="test")  # type: ignore[arg-type]

    def cookie(self, viewer: Viewer) -> str:
        """A signed session cookie for ``viewer``, as a sign-in would set."""
        return self.codec.dumps(viewer)

    def http(self, viewer: Viewer | None = None) -> httpx.Client:
        """An HTTP client, signed in as ``viewer`` when given (no redirects followed)."""
        c = httpx.Client(base_url=self.base_url, timeout=30, follow_redirects=False)
        if viewer is not None:
            c.cookies.set(COOKIE, self.cookie(viewer), domain="127.0.0.1", path="/console")
        return c

    def browser_cookie(self, viewer: Viewer) -> dict[str, Any]:
        """For ``context.add_cookies([...])``."""
        return {"name": COOKIE, "value": self.cookie(viewer), "url": self.base_url + "/console", "httpOnly": True,
                "sameSite": "Lax"}

    # --- the demo data ------------------------------------------------------------------------

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, args).fetchall()

    def people(self, role: str) -> list[dict[str, Any]]:
        """The demo tenant's people whose primary role is ``role`` (student, teacher, guardian, administrator)."""
        return [orjson.loads(r[0]) for r in self.rows(
            "SELECT data FROM people WHERE tenant = 'demo' AND primary_role = ? AND status = 'active' ORDER BY id", role)]

    def teacher_with_section(self) -> tuple[str, str]:
        """(teacher id, section id) of a demo teacher and one section they teach."""
        (pid, sid), *_ = self.rows("SELECT person_id, section_id FROM enrollments WHERE tenant = 'demo' AND role = 'teacher'"
                                   " AND status = 'active' ORDER BY section_id")
        return _uuid(pid), _uuid(sid)

    def students_of(self, section_id: str) -> list[str]:
        return [_uuid(r[0]) for r in self.rows(
            "SELECT person_id FROM enrollments WHERE tenant = 'demo' AND role = 'student' AND status = 'active'"
            " AND section_id = ? ORDER BY person_id", uuid.UUID(section_id).bytes)]


def _uuid(v: Any) -> str:
    return str(uuid.UUID(v) if isinstance(v, str) else uuid.UUID(bytes=bytes(v)))


def start_site(tmp: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], ConsoleSite]:
    db = tmp / "console.db"
    env = {**os.environ, "TESSERA_DATABASE_URL": f"sqlite:///{db}", "TESSERA_LOG_FORMAT": "json",
           "TESSERA_CONSOLE__SECRET": SECRET, "TESSERA_ROUTING__ENGINE": "off", **(extra_env or {})}
    subprocess.run([devserver.tessera_exe(), "demo", "--no-serve"], env=env, cwd=tmp, capture_output=True, timeout=180, check=True)
    server = devserver.start(env, tmp, what="the console server")
    return server.proc, ConsoleSite(server.base_url, db, env, tmp)


def stop_site(proc: subprocess.Popen[bytes]) -> None:
    devserver.stop(proc)


@pytest.fixture(scope="module")
def console_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    proc, site = start_site(tmp_path_factory.mktemp("console"))
    try:
        yield site
    finally:
        stop_site(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright, for one test module.

    Module-scoped, and stopped when the module's tests are done: while Playwright's sync API
    runs it holds an asyncio loop marked running in this thread, so a later test of the same
    process that calls ``asyncio.run`` would fail (it did, with a browser kept for the whole
    session); and it allows one running instance a thread, which module scope gives too."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("TESSERA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def assert_accessible(page: Any, what: str) -> None:
    """axe-core on the page as it is: no serious or critical violation (WCAG 2.1 A and AA rules)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{what}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in bad)


def screenshot(page: Any, folder: Path, name: str) -> Path:
    """A full-page PNG under the test's temporary folder."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    return out


__all__ = ["CHROMIUM_ARGS", "ConsoleSite", "assert_accessible", "browser", "console_site", "screenshot", "start_site", "stop_site"]
