"""Screenshots of the web console for the docs: ``docs/images/console-*.png``.

Starts its own demo server (``tessera demo --no-serve`` into a temporary folder, then
``tessera serve`` on a free port, by ``gateway.devserver``), signs in each role by minting a session cookie with the
server's session secret, opens the main pages in headless Chromium (Playwright; Debian's
``/usr/bin/chromium`` unless ``TESSERA_CHROMIUM`` names another) and saves a PNG of each.
A page the server does not have (yet), or answers with an error, is skipped and named.

    python scripts/console_screenshots.py [--out docs/images] [--width 1200]

Run from the repository root with the virtualenv's Python (``tessera`` on its PATH).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import devserver  # noqa: E402
from gateway.console.web import COOKIE, SessionCodec, Viewer  # noqa: E402

#: (file name, who, path): ``{learner}``, ``{section}``, ``{org}`` come from the demo data
SHOTS = [
    ("console-sign-in", None, "/console/sign-in"),
    ("console-learner", "learner", "/console/learners/{learner}"),
    ("console-learner-guardian", "guardian", "/console/learners"),
    ("console-class", "teacher", "/console/classes/{section}"),
    ("console-schools", "admin", "/console/schools"),
    ("console-admin", "admin", "/console/admin"),
]


def _uuid(v: Any) -> str:
    return str(uuid.UUID(v) if isinstance(v, str) else uuid.UUID(bytes=bytes(v)))


def demo_people(db: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(ids for the paths, person id of each role): a teacher, a section they teach (the one
    with the most mastery states), a learner of that section who has a guardian, and that guardian."""
    with sqlite3.connect(db) as conn:
        # sections whose course is linked to standards first, then the most mastery states: the heatmap shows
        rows = conn.execute(
            "SELECT e.person_id, e.section_id FROM enrollments e WHERE e.tenant='demo' AND e.role='teacher' AND e.status='active' "
            "ORDER BY (SELECT count(*) FROM sections x JOIN courses c ON c.tenant = x.tenant AND c.id = x.course_id "
            "          WHERE x.tenant = e.tenant AND x.id = e.section_id AND c.data LIKE '%\"competency_ids\":[\"%') DESC, "
            "(SELECT count(*) FROM enrollments s JOIN mastery_states m ON m.tenant = s.tenant AND m.learner_id = s.person_id "
            "          WHERE s.tenant = e.tenant AND s.section_id = e.section_id AND s.role = 'student') DESC, e.section_id").fetchall()
        for teacher, section in rows:
            students = conn.execute("SELECT p.data FROM enrollments e JOIN people p ON p.id = e.person_id AND p.tenant = e.tenant "
                                    "WHERE e.tenant='demo' AND e.role='student' AND e.status='active' AND e.section_id = ? "
                                    "ORDER BY e.person_id", (section,)).fetchall()
            for (data,) in students:
                doc = orjson.loads(data)
                if doc.get("agent_ids"):
                    org = _uuid(conn.execute("SELECT id FROM orgs WHERE tenant='demo' ORDER BY id").fetchone()[0])
                    ids = {"learner": doc["id"], "section": _uuid(section), "org": org}
                    return ids, {"learner": doc["id"], "guardian": doc["agent_ids"][0], "teacher": _uuid(teacher)}
    raise SystemExit("the demo data has no learner with a guardian in a taught section")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--width", type=int, default=1200)
    args = ap.parse_args()
    chromium = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise SystemExit(f"{chromium} is missing (apt-get install chromium)")
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="tessera-shots-") as tmp:
        db = Path(tmp) / "demo.db"
        env = {**os.environ, "TESSERA_DATABASE_URL": f"sqlite:///{db}", "TESSERA_CONSOLE__SECRET": secret,
               "TESSERA_ROUTING__ENGINE": "off",
               # shown on the sign-in page only (the provider is never called)
               "TESSERA_CONSOLE__OIDC_ISSUER": "https://login.district.example", "TESSERA_CONSOLE__OIDC_CLIENT_ID": "tessera",
               "TESSERA_CONSOLE__OIDC_TENANT": "demo", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        print("loading the demo data ...", flush=True)
        subprocess.run([devserver.tessera_exe(), "demo", "--no-serve"], env=env, cwd=tmp, capture_output=True, check=True,
                       timeout=600)
        try:
            server = devserver.start(env, Path(tmp), timeout=90)
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
        try:
            ids, people = demo_people(db)
            return shoot(server.base_url, secret, ids, people, args.out, args.width, chromium)
        finally:
            server.stop(timeout=30)


def shoot(base: str, secret: str, ids: dict[str, str], people: dict[str, str], out: Path, width: int, chromium: str) -> int:
    from playwright.sync_api import sync_playwright

    codec = SessionCodec(secret.encode(), max_age_seconds=3600)
    out.mkdir(parents=True, exist_ok=True)
    names = {"learner": "Learner", "guardian": "Guardian", "teacher": "Teacher", "admin": "District administrator"}
    saved = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"])
        try:
            for name, role, pattern in SHOTS:
                path = pattern.format(**ids)
                context = browser.new_context(viewport={"width": width, "height": 800})
                if role is not None:
                    pid = people.get(role)
                    viewer = Viewer(tenant="demo", role=role, person_id=uuid.UUID(pid) if pid else None,  # type: ignore[arg-type]
                                    name=names[role], via="screenshots")
                    context.add_cookies([{"name": COOKIE, "value": codec.dumps(viewer), "url": f"{base}/console", "httpOnly": True,
                                          "sameSite": "Lax"}])
                page = context.new_page()
                answer = page.goto(base + path)
                if answer is None or answer.status != 200:
                    print(f"skipped {name}: {path} answered HTTP {answer.status if answer else '?'}")
                else:
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(f"saved {out / f'{name}.png'} ({path})")
                    saved += 1
                context.close()
        finally:
            browser.close()
    print(f"{saved} screenshot(s) saved under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
