"""Who may see which console page: one table, checked for every persona against every page.

A *scene* of demo people (``scene(site)``): a learner in a section, that learner's guardian,
the section's teacher, an administrator, and for each of the first three someone of the
same role with no tie to them (``other_learner``, ``other_guardian``, ``other_teacher``),
plus ``anonymous`` (no session). A ``Page`` names a path pattern (``{learner}``,
``{section}``, ``{org}`` are the scene's ids) and the personas that may open it; every other
signed-in persona gets ``denied`` (404 for a page about someone: the same answer as an
unknown id, so ids cannot be probed; 403 for a page of another role such as the admin
pages), and ``anonymous`` gets the 303 to the sign-in page with the page as ``next``.

Each area adds its pages to ``PAGES`` (one line each) and calls ``check_pages`` from its
HTTP tests::

    from .console_roles import PAGES, Page, check_pages, scene
    assert check_pages(console_site, scene(console_site), [Page("/console/learners/{learner}", ...)]) == []
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from gateway.console.web import Viewer

from .console_support import ConsoleSite

PERSONAS = ("learner", "guardian", "teacher", "admin", "other_learner", "other_guardian", "other_teacher", "anonymous")
SIGNED_IN = tuple(p for p in PERSONAS if p != "anonymous")
#: a persona's console role
ROLE_OF = {"learner": "learner", "guardian": "guardian", "teacher": "teacher", "admin": "admin", "other_learner": "learner",
           "other_guardian": "guardian", "other_teacher": "teacher"}


@dataclass(frozen=True)
class Page:
    """A console page and the personas that may see it (``ok``); the others get ``denied``."""

    pattern: str
    allowed: frozenset[str]
    ok: int = 200
    denied: int = 404
    #: open without a session (the sign-in page): anonymous gets ``ok``
    public: bool = False


def page(pattern: str, *allowed: str, ok: int = 200, denied: int = 404, public: bool = False) -> Page:
    return Page(pattern, frozenset(allowed), ok, denied, public)


#: every console page there is (each area adds its own)
PAGES: list[Page] = [
    # the start page sends each signed-in person to their own start (303)
    page("/console", *SIGNED_IN, ok=303),
    # the sign-in page: for people without a session; with one, it sends them on (303)
    page("/console/sign-in", "anonymous", public=True, denied=303),
    # the learner's pages: themself, their guardian, their teacher, an admin
    page("/console/learners", *SIGNED_IN),
    page("/console/learners/{learner}", "learner", "guardian", "teacher", "admin"),
    page("/console/learners/{learner}/competencies/{competency}", "learner", "guardian", "teacher", "admin"),
    # classes: a teacher's own, every one for an admin; a page of another role for learners and families
    page("/console/classes", "teacher", "other_teacher", "admin", denied=403),
    page("/console/classes/{section}", "teacher", "admin"),
    page("/console/classes/{section}.csv", "teacher", "admin"),
    # the district and school views and the integrator pages: administrators only
    page("/console/schools", "admin", denied=403),
    page("/console/schools/{org}", "admin", denied=403),
    *(page(f"/console/admin{sub}", "admin", denied=403)
      for sub in ("", "/imports", "/credentials", "/credentials/new", "/routing", "/unaligned")),
]


@dataclass(frozen=True)
class Scene:
    ids: dict[str, str]
    viewers: dict[str, Viewer]


def _uuid(v: Any) -> str:
    return str(uuid.UUID(v) if isinstance(v, str) else uuid.UUID(bytes=bytes(v)))


def scene(site: ConsoleSite) -> Scene:
    """The personas, picked from the demo roster (module docstring)."""
    teacher, section = site.teacher_with_section()
    rows = site.rows("SELECT id, data FROM people WHERE tenant='demo' AND status='active'")
    people = {_uuid(r[0]): orjson.loads(r[1]) for r in rows}
    in_section = set(site.students_of(section))
    learner = next(pid for pid in sorted(in_section) if people[pid].get("agent_ids"))
    guardian = people[learner]["agent_ids"][0]
    learner_sections = {_uuid(r[0]) for r in site.rows("SELECT section_id FROM enrollments WHERE tenant='demo' AND status='active' "
                                                        "AND person_id = ?", uuid.UUID(learner).bytes)}
    students = [pid for pid, d in people.items() if any(r.get("role") == "student" for r in d.get("roles", []))]
    other_learner = next(pid for pid in sorted(students) if pid != learner)
    guardians = [pid for pid, d in people.items() if any(r.get("role") == "guardian" for r in d.get("roles", []))]
    other_guardian = next(pid for pid in sorted(guardians) if pid not in people[learner].get("agent_ids", []))
    teaching: dict[str, set[str]] = {}
    for pid, sid in site.rows("SELECT person_id, section_id FROM enrollments WHERE tenant='demo' AND role='teacher' AND status='active'"):
        teaching.setdefault(_uuid(pid), set()).add(_uuid(sid))
    other_teacher = next(pid for pid, secs in sorted(teaching.items()) if not secs & learner_sections)
    org = _uuid(site.rows("SELECT id FROM orgs WHERE tenant='demo' ORDER BY id")[0][0])
    # one of the learner's states, else any competency of the tenant (the skill page shows "no work yet")
    competency = _uuid((site.rows("SELECT competency_id FROM mastery_states WHERE tenant='demo' AND learner_id = ? LIMIT 1",
                                  uuid.UUID(learner).bytes)
                        or site.rows("SELECT id FROM competencies WHERE tenant='demo' ORDER BY id LIMIT 1"))[0][0])
    ids = {"learner": learner, "section": section, "org": org, "competency": competency}
    who = {"learner": learner, "guardian": guardian, "teacher": teacher, "admin": None, "other_learner": other_learner,
           "other_guardian": other_guardian, "other_teacher": other_teacher}
    viewers = {p: site.viewer(ROLE_OF[p], who[p], name=p.replace("_", " ")) for p in SIGNED_IN}
    return Scene(ids, viewers)


def expected(p: Page, persona: str) -> int:
    if persona == "anonymous":
        return p.ok if p.public else 303
    return p.ok if persona in p.allowed else p.denied


def check_pages(site: ConsoleSite, sc: Scene, pages: list[Page] | None = None) -> list[str]:
    """Every persona against every page: the differences from the table, as readable lines."""
    wrong: list[str] = []
    clients = {p: site.http(sc.viewers.get(p)) for p in PERSONAS}
    try:
        for pg in pages if pages is not None else PAGES:
            path = pg.pattern.format(**sc.ids)
            for persona, client in clients.items():
                r = client.get(path)
                want = expected(pg, persona)
                if r.status_code != want:
                    wrong.append(f"{persona} GET {path}: HTTP {r.status_code}, expected {want}")
                elif persona == "anonymous" and want == 303 and not pg.public:
                    if r.headers.get("location") != f"/console/sign-in?next={quote(path, safe='')}":
                        wrong.append(f"anonymous GET {path}: redirected to {r.headers.get('location')}, not to sign-in")
    finally:
        for c in clients.values():
            c.close()
    return wrong


__all__ = ["PAGES", "PERSONAS", "Page", "Scene", "check_pages", "expected", "page", "scene"]
