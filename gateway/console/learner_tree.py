"""A learner's framework as a tree of ``details`` elements, written as HTML here rather than in
a template: the profile of a 900-competency framework must render in a few milliseconds.

The tree's shape (order, nesting, each competency's code and statement, already escaped,
and the whole line of a competency nobody has worked on yet) depends only on the tenant's
competencies, so it is built once per framework and kept until the mastery engine's model of
the tenant changes (``skeleton``); a request then writes only the competencies the learner
has a state on. Everything from the store is escaped (``markupsafe.escape``); links come
only from ``learner_view.safe_url`` (http and https).

Markup of one competency with a state::

    <li><details><summary><span class="code">NBT.1</span> Recognize ... <span class="lvl lvl-4">Advanced</span>
      <span class="plain">shown</span></summary>
      <div class="why"><p><strong>Why this level:</strong> ...</p><p>Latest work:</p><ul class="trail">...</ul>
      <p><a href="/console/learners/L/competencies/C">All the work on NBT.1 and how it counted</a></p></div>
    </details></li>

A parent's ``details`` holds its children's ``ul`` after its own explanation.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from functools import lru_cache
from html import escape as esc
from typing import Any

from markupsafe import Markup

from ..mastery.structure import Scale, TenantModel
from .learner_words import TRAIL, Badge, badge, evidence_row, why


@dataclass(frozen=True)
class Entry:
    cid: uuid.UUID
    depth: int
    kids: bool
    closes: int
    code: str  # escaped
    head: str  # escaped: code and statement
    leaf: str  # the whole line when there is no state (leaves only)
    rule_name: str
    min_evidence: int
    scale: Scale
    group: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class Skeleton:
    entries: tuple[Entry, ...]
    leaves: int
    by_id: dict[uuid.UUID, Entry]


@lru_cache(maxsize=64)
def badge_html(b: Badge) -> str:
    plain = f' <span class="plain">{esc(b.plain)}</span>' if b.plain != b.label.lower() else ""
    return f'<span class="lvl {b.css}">{esc(b.label)}</span>{plain}'


def build_skeleton(model: TenantModel, fw: uuid.UUID, details: dict[uuid.UUID, tuple[str, str]]) -> Skeleton:
    members = [c for c, f in model.framework_of.items() if f == fw]

    def code(c: uuid.UUID) -> str:
        return details.get(c, ("", ""))[0]

    roots = sorted((c for c in members if not any(model.framework_of.get(p) == fw for p in model.parents.get(c, ()))), key=code)
    rows: list[list[Any]] = []

    def visit(c: uuid.UUID, depth: int, seen: frozenset[uuid.UUID]) -> None:
        kids = sorted((k for k in model.children.get(c, ()) if model.framework_of.get(k) == fw and k not in seen), key=code)
        cd, statement = details.get(c, ("", ""))
        head = f'<span class="code">{esc(cd)}</span> {esc(statement)}'
        rule, scale = model.rule_and_scale(c)
        leaf = "" if kids else f'<li class="leaf">{head} {badge_html(badge(scale, None))}</li>'
        rows.append([c, depth, bool(kids), 0, str(esc(cd)), head, leaf, rule.name, rule.min_evidence, scale, tuple(model.group(c))])
        for k in kids:
            visit(k, depth + 1, seen | {c})
        if kids:
            rows[-1][3] += 1  # closes

    for r in roots:
        visit(r, 0, frozenset())
    entries = tuple(Entry(*row) for row in rows)
    return Skeleton(entries, sum(1 for e in entries if not e.kids), {e.cid: e for e in entries})


class _Skeletons:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[str, uuid.UUID], tuple[Any, Skeleton]] = {}

    def get(self, tenant: str, model: TenantModel, fw: uuid.UUID, details: dict[uuid.UUID, tuple[str, str]]) -> Skeleton:
        hit = self._by.get((tenant, fw))
        if hit is not None and hit[0] == model.stamp:
            return hit[1]
        sk = build_skeleton(model, fw, details)
        with self._lock:
            if len(self._by) > 256:
                self._by.clear()
            self._by[(tenant, fw)] = (model.stamp, sk)
        return sk


SKELETONS = _Skeletons()


def _trail(rows: list[dict[str, Any]]) -> str:
    out = ['<p>Latest work:</p><ul class="trail">']
    for e in rows:
        act = esc(e["activity"])
        if e["activity_url"]:
            act = f'<a href="{esc(e["activity_url"])}" rel="noopener noreferrer">{act}</a>'
        source = esc(e["source"]) + (f" ({esc(e['source_words'])})" if e["source_words"] else "")
        work = "".join(f', <a href="{esc(a)}" rel="noopener noreferrer">see the work</a>' for a in e["artifacts"])
        out.append(f'<li><time datetime="{e["iso"]}">{e["day"]}</time>: {act}, {esc(e["score"])}, from {source}{work}</li>')
    out.append("</ul>")
    return "".join(out)


def why_block(e: Entry, st: dict[str, Any], docs: list[dict[str, Any]], lid: str) -> str:
    """The explanation under a competency with a state: why this level, the latest work
    (``docs``: its counted evidence, newest first), the link to all of it."""
    trail = [evidence_row(d, e.scale) for d in docs[:TRAIL]]
    more = max(0, int(st.get("evidence_count") or 0) - len(trail)) if not e.kids else 0
    code = e.code or "this skill"
    return (f'<div class="why"><p><strong>Why this level:</strong> {esc(why(st, e.scale, e.rule_name, e.min_evidence))}</p>'
            f'{_trail(trail) if trail else ""}'
            f'<p><a href="/console/learners/{lid}/competencies/{e.cid}">All the work on {code} and how it counted'
            f'{f" ({more} more)" if more else ""}</a></p></div>')


def render(sk: Skeleton, states: dict[uuid.UUID, dict[str, Any]], blocks: dict[uuid.UUID, str]) -> tuple[Markup, dict[str, int]]:
    """The tree's ``li`` elements (the caller writes the ``ul``) and the leaves' counts by plain
    word. ``states``: what a badge needs of each state; ``blocks``: each state's ``why_block``."""
    parts: list[str] = []
    counts = {"shown": 0, "getting there": 0, "not yet": 0, "started": 0}
    small = len(sk.entries) < 12
    for e in sk.entries:
        st = states.get(e.cid)
        if st is None and not e.kids:
            parts.append(e.leaf)
        else:
            b = badge(e.scale, st)
            opened = " open" if small and e.depth == 0 else ""
            parts.append(f"<li><details{opened}><summary>{e.head} {badge_html(b)}</summary>")
            if st is not None:
                if not e.kids:
                    counts["started"] += 1
                    counts[b.plain] = counts.get(b.plain, 0) + 1
                parts.append(blocks.get(e.cid, ""))
            parts.append("<ul>" if e.kids else "</details></li>")
        if e.closes:
            parts.append("</ul></details></li>" * e.closes)
    return Markup("".join(parts)), counts


__all__ = ["SKELETONS", "Entry", "Skeleton", "badge_html", "build_skeleton", "render", "why_block"]
