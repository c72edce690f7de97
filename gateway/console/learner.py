"""The learner's pages: what a learner (and their family, and their teachers) can see.

- ``/console/learners``: a guardian's children, a learner's own entry; teachers and
  administrators reach learners through their classes, so for them the page lists the
  classes they may open (``/console/classes/{id}``), each class listing its learners.
- ``/console/learners/{id}``: the profile: the learner's frameworks as a tree of
  ``details`` elements (keyboard-friendly, open with Enter or Space), each competency with
  its level in words, colour and pattern; for each state "why this level" in plain words
  and the latest work behind it (date, activity, score, where it came from, a link to the
  work where there is one); what to work on next; the learning plans; and a chart of
  competencies started and shown week by week, per framework (server-rendered SVG with a
  table of the same numbers).
- ``/console/learners/{id}/competencies/{competency_id}``: one competency in full: every
  piece of work that counted and how much, the rule and scale, its parts, what it builds
  on and what it leads to.

Who may open a learner's pages is ``Access.learner`` (the learner, their guardians, the
teachers of their sections, the tenant's administrators); anyone else, an unknown id or
one that is not a UUID gets the same friendly 404 page. The content is read in a fixed
number of queries whatever the size of the framework (``learner_view``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .access import parse_id
from .charts import SHOWN, STARTED, Series, line_chart
from .learner_view import LearnerView, by_plain, sections_named
from .web import PREFIX, Console, Viewer


def _day(d: date) -> str:
    return f"{d.day} {d:%b}"


def chart_of(tree: dict[str, Any], learner_name: str, index: int) -> dict[str, Any] | None:
    """The progress chart of one framework and its table alternative."""
    data = tree.get("chart")
    if not data:
        return None
    weeks: list[date] = data["weeks"]
    started, shown = data["started"], data["shown"]
    title = f"{learner_name}: skills started and shown, week by week, in {tree['title']}"
    desc = (f"Two lines rising week by week from {_day(weeks[0])} {weeks[0]:%Y} to the week of {_day(weeks[-1])} {weeks[-1]:%Y}. "
            f"By the last week {started[-1]} of {tree['leaves']} skills have work (solid blue line, circles) and "
            f"{shown[-1]} are shown (dashed green line, squares).")
    svg = line_chart(f"chart-{index}", title, desc, [_day(w) for w in weeks],
                     [Series("Started", started, *STARTED), Series("Shown", shown, *SHOWN)], "Skills")
    rows = [{"week": f"{_day(w)} {w:%Y}", "iso": w.isoformat(), "started": a, "shown": b} for w, a, b in zip(weeks, started, shown, strict=True)]
    return {"svg": svg, "rows": rows, "title": title}


def build(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    view = LearnerView(console.ctx.store)
    signed_in = Depends(console.signed_in)

    @router.get("/learners")
    def learners(request: Request, viewer: Viewer = signed_in) -> Response:
        if viewer.role in ("learner", "guardian"):
            people = view.names(viewer.tenant, console.access.wards(viewer))
            title = "My progress" if viewer.role == "learner" else "My children"
            return console.render(request, "learners.html", title=title, people=people, classes=None)
        classes = sections_named(console.ctx.store, viewer.tenant, console.access.sections(viewer))
        return console.render(request, "learners.html", title="Learners", people=None, classes=classes)

    @router.get("/learners/{learner_id}")
    def profile(learner_id: str, request: Request, viewer: Viewer = signed_in) -> Response:
        lid = console.access.learner(viewer, learner_id)
        page = view.profile(viewer.tenant, lid)
        name = page["learner"]["name"]
        charts = [chart_of(tree, name, i) for i, tree in enumerate(page["frameworks"])]
        return console.render(request, "learner.html", title=name, lid=str(lid), charts=charts,
                              plain_counts=by_plain(page["counts"]), **page)

    @router.get("/learners/{learner_id}/competencies/{competency_id}")
    def competency(learner_id: str, competency_id: str, request: Request, viewer: Viewer = signed_in) -> Response:
        lid = console.access.learner(viewer, learner_id)
        cid = parse_id(competency_id, "competency")
        page = view.competency(viewer.tenant, lid, cid)
        title = f"{page['learner']['name']}: {page['code'] or 'one skill'}"
        return console.render(request, "learner_competency.html", title=title, lid=str(lid), **page)

    return router


__all__ = ["build", "chart_of"]
