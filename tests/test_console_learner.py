"""The learner pages over real HTTP (``/console/learners``, a profile, one competency): the
content checked against the store, who may see which learner, the friendly 404s, the SVG
chart. A real ``tessera serve`` with the demo data (tests/console_support.py)."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

import orjson
import pytest

from gateway.mastery.learners import Learners
from gateway.model import Evidence, LearningPlan, PlanTarget, Provenance, Score
from gateway.store import Store
from gateway.wiring import open_store

from .console_support import ConsoleSite, console_site  # noqa: F401

LEVELS = {"1": "Beginning", "2": "Developing", "3": "Proficient", "4": "Advanced"}
NOT_FOUND = "We could not find that page"


def _uuid(v: Any) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(v)) if not isinstance(v, str) else uuid.UUID(v)


@pytest.fixture(scope="module")
def store(console_site: ConsoleSite) -> Iterator[Store]:  # noqa: F811
    s = open_store(f"sqlite:///{console_site.db_path}")
    yield s
    s.dispose()


@pytest.fixture(scope="module")
def learner(console_site: ConsoleSite) -> uuid.UUID:  # noqa: F811
    """The demo learner with the most evidence."""
    (lid, _), *_ = console_site.rows("SELECT learner_id, count(*) FROM evidence WHERE tenant = 'demo' GROUP BY learner_id"
                                     " ORDER BY count(*) DESC, learner_id LIMIT 1")
    return _uuid(lid)


def page(site: ConsoleSite, viewer: Any, path: str) -> tuple[int, str]:
    with site.http(viewer) as c:
        r = c.get(path)
    return r.status_code, r.text


def summary_of(html: str, code: str) -> re.Match[str] | None:
    return re.search(rf'<summary><span class="code">{re.escape(code)}</span> [^<]*<span class="lvl (lvl-[\w-]+)">([^<]+)</span>', html)


def test_profile_shows_the_states_the_latest_work_and_what_comes_next(console_site: ConsoleSite, store: Store, learner: uuid.UUID) -> None:  # noqa: F811
    status, html = page(console_site, console_site.viewer("admin"), f"/console/learners/{learner}")
    assert status == 200
    person = orjson.loads(console_site.rows("SELECT data FROM people WHERE id = ?", learner.bytes)[0][0])
    assert f"<h1>{person['given_name']} {person['family_name']}</h1>" in html
    school = orjson.loads(console_site.rows("SELECT data FROM orgs WHERE id = ?", uuid.UUID(person["roles"][0]["org_id"]).bytes)[0][0])
    assert school["name"] in html

    states = console_site.rows(
        "SELECT c.code, s.level, s.mastered, s.data FROM mastery_states s JOIN competencies c ON c.id = s.competency_id"
        " WHERE s.tenant = 'demo' AND s.learner_id = ? AND s.status = 'active'", learner.bytes)
    assert len(states) >= 3
    checked = 0
    for code, level, mastered, data in states:
        found = summary_of(html, code)
        assert found, f"{code} is not in the tree"
        assert unescape(found.group(2)) == LEVELS[level], code
        assert found.group(1) == f"lvl-{level}"
        assert html[found.end():].startswith(' <span class="plain">shown</span>') == bool(mastered), code
        doc = orjson.loads(data)
        if doc["method"] == "rollup":
            continue
        # its latest counted evidence item: date, activity and score under the summary
        ev = [orjson.loads(d) for (d,) in console_site.rows(
            "SELECT data FROM evidence WHERE tenant = 'demo' AND learner_id = ? AND competency_id = ? AND voided = 0"
            " ORDER BY observed_at DESC", learner.bytes, uuid.UUID(doc["competency_id"]).bytes)]
        block = html[found.end(): html.index("</details>", found.end())]
        newest = ev[0]
        d = datetime.fromisoformat(newest["observed_at"]).date()
        assert f'<time datetime="{d.isoformat()}">{d.day} {d:%b %Y}</time>' in block
        assert newest["activity"]["title"] in block
        raw, top = newest["score"]["raw"], newest["score"]["max"]
        assert f"{raw:g} out of {top:g} ({newest['score']['scaled']:.0%})" in block
        assert f"from {newest['provenance']['system']}" in block
        assert "Why this level:" in block and f"from {len(ev)} piece" in block
        checked += 1
    assert checked >= 2

    expected = Learners(store).next_competencies("demo", learner, limit=8)
    nxt = html[html.index('id="next"'):html.index('id="plans"')]
    assert [re.sub(r"\s+", " ", unescape(m)) for m in re.findall(r'<span class="code">([^<]*)</span>', nxt)] == [e.get("code", "") for e in expected]
    for e in expected:
        assert f'/console/learners/{learner}/competencies/{e["id"]}' in nxt


def test_one_competency_lists_every_item_that_counted_and_how_much(console_site: ConsoleSite, learner: uuid.UUID) -> None:  # noqa: F811
    (cid, data), *_ = console_site.rows(
        "SELECT competency_id, data FROM mastery_states WHERE tenant = 'demo' AND learner_id = ? AND status = 'active'"
        " AND data NOT LIKE '%\"method\":\"rollup\"%' ORDER BY json_extract(data, '$.evidence_count') DESC", learner.bytes)
    state = orjson.loads(data)
    status, html = page(console_site, console_site.viewer("admin"), f"/console/learners/{learner}/competencies/{_uuid(cid)}")
    assert status == 200
    rows = re.findall(r"<tr>\s*<td><time", html)
    counted = [c for c in state["contributions"] if c.get("evidence_id")]
    assert len(rows) == len(counted) >= 1
    for c in counted:
        assert f"{c['weight'] * 100:.0f}%" in html
    assert "How Tessera works out the level" in html and "Proficient" in html


def test_a_plan_and_a_piece_of_work_with_its_link(console_site: ConsoleSite, store: Store, learner: uuid.UUID) -> None:  # noqa: F811
    (cid,), *_ = console_site.rows("SELECT competency_id FROM evidence WHERE tenant = 'demo' AND learner_id = ? ORDER BY observed_at",
                                   learner.bytes)
    cid = _uuid(cid)
    now = datetime.now(UTC)
    work = [Evidence(tenant="demo", source="test", native_id=f"art-{n}", learner_id=learner, competency_id=cid,
                     score=Score(raw=9, min=0, max=10), observed_at=now, artifacts=[url],
                     activity={"system": "portfolio", "id": f"urn:test:{n}", "title": f"Portfolio piece {n}"},
                     provenance=Provenance(standard="xapi", system="portfolio", native_id=f"art-{n}", received_at=now))
            for n, url in enumerate(["https://portfolio.example.org/work/42", "javascript:alert(1)"])]
    plan = LearningPlan(tenant="demo", source="test", native_id="plan-1", learner_id=learner, title="Fractions by spring",
                        targets=[PlanTarget(competency_id=cid, target_date=date(2027, 3, 1), status="in_progress", note="Two short quizzes a week")],
                        pathway=[cid], notes="Agreed with the family")
    admin = console_site.viewer("admin")
    _, before = page(console_site, admin, f"/console/learners/{learner}")  # the profile's tree is kept until the states change
    assert "Portfolio piece" not in before
    store.records.apply("demo", [*work, plan])
    _, html = page(console_site, console_site.viewer("guardian", _guardian(console_site, learner)), f"/console/learners/{learner}")
    assert "Portfolio piece" in html[html.index('id="standards"'):]  # the new work is the latest under its competency
    plans = html[html.index('id="plans"'):]
    assert "Fractions by spring" in plans and "Agreed with the family" in plans and "Working on it" in plans
    assert '<time datetime="2027-03-01">1 Mar 2027</time>' in plans
    _, full = page(console_site, console_site.viewer("admin"), f"/console/learners/{learner}/competencies/{cid}")
    assert re.search(r'<a class="artifact" href="https://portfolio.example.org/work/42" [^>]*>See the work</a>', full)
    assert "Portfolio piece 1" in full and "javascript:" not in full


def _guardian(site: ConsoleSite, learner: uuid.UUID) -> str:
    doc = orjson.loads(site.rows("SELECT data FROM people WHERE id = ?", learner.bytes)[0][0])
    return doc["agent_ids"][0]


def _learner_outside(site: ConsoleSite, teacher: str) -> str:
    (pid,), *_ = site.rows(
        "SELECT id FROM people WHERE tenant = 'demo' AND primary_role = 'student' AND id NOT IN ("
        " SELECT e.person_id FROM enrollments e JOIN enrollments t ON t.section_id = e.section_id"
        " WHERE t.person_id = ? AND t.role = 'teacher') ORDER BY id", uuid.UUID(teacher).bytes)
    return str(_uuid(pid))


def test_who_sees_which_learner(console_site: ConsoleSite, learner: uuid.UUID) -> None:  # noqa: F811
    other = next(p["id"] for p in console_site.people("student") if p["id"] != str(learner))
    guardian = console_site.viewer("guardian", _guardian(console_site, learner))
    status, html = page(console_site, guardian, "/console/learners")
    assert status == 200 and f'href="/console/learners/{learner}"' in html
    assert page(console_site, guardian, f"/console/learners/{learner}")[0] == 200
    status, html = page(console_site, guardian, f"/console/learners/{other}")
    assert status == 404 and NOT_FOUND in html

    me = console_site.viewer("learner", learner)
    assert page(console_site, me, f"/console/learners/{learner}")[0] == 200
    status, html = page(console_site, me, "/console/learners")
    assert status == 200 and f'href="/console/learners/{learner}"' in html and other not in html
    for path in (f"/console/learners/{other}", f"/console/learners/{other}/competencies/{uuid.uuid4()}"):
        status, html = page(console_site, me, path)
        assert status == 404 and NOT_FOUND in html

    teacher, section = console_site.teacher_with_section()
    tv = console_site.viewer("teacher", teacher)
    mine = console_site.students_of(section)[0]
    assert page(console_site, tv, f"/console/learners/{mine}")[0] == 200
    status, html = page(console_site, tv, f"/console/learners/{_learner_outside(console_site, teacher)}")
    assert status == 404 and NOT_FOUND in html
    status, html = page(console_site, tv, "/console/learners")
    assert status == 200 and f'href="/console/classes/{section}"' in html


def test_unknown_ids_and_no_session(console_site: ConsoleSite, learner: uuid.UUID) -> None:  # noqa: F811
    admin = console_site.viewer("admin")
    for path in (f"/console/learners/{uuid.uuid4()}", "/console/learners/not-a-uuid", "/console/learners/1%20OR%201=1",
                 f"/console/learners/{learner}/competencies/{uuid.uuid4()}", f"/console/learners/{learner}/competencies/nope"):
        status, html = page(console_site, admin, path)
        assert status == 404, path
        assert NOT_FOUND in html and "Traceback" not in html
    with console_site.http() as c:
        r = c.get(f"/console/learners/{learner}")
    assert r.status_code == 303 and r.headers["location"] == f"/console/sign-in?next=%2Fconsole%2Flearners%2F{learner}"


def test_the_progress_chart_is_accessible_svg_with_a_table(console_site: ConsoleSite, learner: uuid.UUID) -> None:  # noqa: F811
    _, html = page(console_site, console_site.viewer("admin"), f"/console/learners/{learner}")
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert svgs
    ns = "{http://www.w3.org/2000/svg}"
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed XML
        assert root.tag == f"{ns}svg" and root.get("role") == "img"
        title, desc = root.find(f"{ns}title"), root.find(f"{ns}desc")
        assert title is not None and desc is not None and title.text and desc.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert len(root.findall(f"{ns}polyline")) == 2
        labels = [t.text or "" for t in root.iter(f"{ns}text")]
        assert any(x.startswith("Started: ") for x in labels) and any(x.startswith("Shown: ") for x in labels)
    # the same numbers as a table, the last row matching the lines' end labels
    table = html[html.index("Show these numbers as a table"):]
    last = re.findall(r"<tr><th scope=\"row\">.*?</th><td>(\d+)</td><td>(\d+)</td></tr>", table[: table.index("</table>")])[-1]
    first_svg = ET.fromstring(svgs[0])
    ends = {t.text.split(": ")[0]: t.text.split(": ")[1] for t in first_svg.iter(f"{ns}text") if t.text and ": " in t.text}
    assert (ends["Started"], ends["Shown"]) == last


def test_a_learner_with_no_work_yet_and_a_guardian_with_no_children(console_site: ConsoleSite, store: Store) -> None:  # noqa: F811
    from gateway.model import OrgRole, Person

    (org,), *_ = console_site.rows("SELECT id FROM orgs WHERE tenant = 'demo' AND type = 'school' ORDER BY id")
    school = _uuid(org)
    parent = Person(tenant="demo", source="test", native_id="g-new", given_name="Noor", family_name="Haddad",
                    roles=[OrgRole(role="guardian", org_id=school, primary=True)])
    child = Person(tenant="demo", source="test", native_id="s-new", given_name="Sami", family_name="Haddad", grades=["KG"],
                   roles=[OrgRole(role="student", org_id=school, primary=True)], agent_ids=[parent.id])
    lonely = Person(tenant="demo", source="test", native_id="g-lonely", given_name="Ada", family_name="Lone",
                    roles=[OrgRole(role="guardian", org_id=school, primary=True)])
    store.records.apply("demo", [parent, child, lonely])
    status, html = page(console_site, console_site.viewer("guardian", parent.id), f"/console/learners/{child.id}")
    assert status == 200
    assert "<h1>Sami Haddad</h1>" in html and "Kindergarten" in html
    assert "There is no work in Tessera for Sami Haddad yet." in html
    assert "Sami Haddad has no standards in Tessera yet" in html and "<svg" not in html
    status, html = page(console_site, console_site.viewer("guardian", lonely.id), "/console/learners")
    assert status == 200 and "There is nobody to show here yet" in html
