"""The words and badges of the learner pages: a level as the scale's name, a plain word and a
colour-and-pattern class (``Badge``), "why this level" in plain words (``why``), and an
evidence item as a row (``evidence_row``: date, activity, score, where it came from, links
to the work, only http(s)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..mastery.structure import Level, Scale

#: evidence items shown under each competency on the profile (all of them on its own page)
TRAIL = 2

_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: where evidence came from, in words (the provenance's ``standard``)
SOURCES = {
    "lti-ags": "gradebook of the learning system",
    "lti11-outcomes": "gradebook of the learning system",
    "oneroster": "school gradebook",
    "xapi": "learning app",
    "ndjson": "imported file",
    "api": "entered in Tessera",
}
KINDS = {
    "assessment": "Test or quiz",
    "performance_task": "Project or task",
    "observation": "Teacher observation",
    "self_assessment": "Self-assessment",
    "artifact": "Piece of work",
    "completion": "Completed activity",
}
METHODS = {
    "latest": "the most recent score",
    "highest": "the best score",
    "mean": "the average score",
    "weighted_average": "an average where the newest work counts most",
    "decaying_average": "an average where newer work counts more than older work",
    "mode": "the level reached most often",
    "power_law": "the trend of the scores over time",
    "n_of_m": "how many of the latest pieces of work reached the level",
}
PLAN_STATUS = {"draft": "Draft", "active": "In use", "completed": "Completed", "archived": "Archived"}
TARGET_STATUS = {"planned": "Planned", "in_progress": "Working on it", "met": "Reached", "dropped": "Dropped"}


@dataclass(frozen=True)
class Badge:
    """How a level looks: the scale's name, a plain word, and the CSS class (colour + pattern)."""

    label: str
    plain: str
    css: str


NOT_STARTED = Badge("Not started", "no work yet", "lvl-none")
TOO_LITTLE = Badge("Not enough work yet", "too early to tell", "lvl-none")


def badge(scale: Scale, state: dict[str, Any] | None) -> Badge:
    if state is None:
        return NOT_STARTED
    level: Level | None = scale.get(state["level"]) if state.get("level") else None
    if level is None or state.get("value") is None:
        return TOO_LITTLE
    i = scale.levels.index(level)
    k = len(scale.levels)
    css = f"lvl-{1 + round(i * 3 / (k - 1)) if k > 1 else 4}"
    if state.get("mastered"):
        plain = "shown"
    elif level is scale.highest_below_mastery:
        plain = "getting there"
    else:
        plain = "not yet"
    label = level.label if level.label and not level.label.strip().isdigit() else plain.capitalize()
    return Badge(label, plain, css)


def why(state: dict[str, Any], scale: Scale, rule_name: str, min_evidence: int) -> str:
    """The state's explanation in plain words (``Learners.explain`` says it for teachers)."""
    n = state.get("evidence_count", 0)
    work = f"{n} piece{'s' if n != 1 else ''} of work"
    value = state.get("value")
    params = state.get("parameters") or {}
    if value is None:
        return f"There is not enough work yet to decide: at least {min_evidence} needed, {n} so far."
    level = scale.get(state.get("level") or "")
    name = level.label if level else "this level"
    if state.get("method") == "rollup":
        text = (f"{name}: this is worked out from its parts. {params.get('mastered_share', 0):.0%} of them are shown; "
                f"{params.get('rollup_share', 1):.0%} are needed.")
    else:
        text = f"{name} ({value:.0%}), from {work}, using {METHODS.get(str(state.get('method')), 'the scores')}."
    above = [lv for lv in scale.levels if lv.min_scaled > value]
    if above:
        text += f" {above[0].label} starts at {above[0].min_scaled:.0%}."
    elif level is not None:
        text += " This is the top level."
    return text


def when(value: str | None) -> tuple[str, str]:
    """(ISO date, "22 Sep 2026") of a stored timestamp (its first ten characters are the date)."""
    if not value or len(value) < 10:
        return "", ""
    iso = value[:10]
    y, m, d = iso.split("-")
    return iso, f"{int(d)} {MONTHS[int(m) - 1]} {y}"


def safe_url(url: Any) -> str | None:
    """A link target only when it is plain http(s) with a host (never javascript: or data:),
    without spaces or control characters (checked by hand: ``urlsplit`` cost more than the
    rest of a profile's evidence rows)."""
    if not isinstance(url, str) or len(url) > 2048:
        return None
    low = url[:8].lower()
    rest = url[8:] if low.startswith("https://") else url[7:] if low.startswith("http://") else None
    if not rest or rest[0] in "/?#" or _UNSAFE.search(url):
        return None
    return url


def score_text(doc: dict[str, Any], scale: Scale) -> str:
    score = doc.get("score") or {}
    scaled = score.get("scaled")
    raw, top = score.get("raw"), score.get("max")
    parts = []
    if raw is not None and top is not None:
        parts.append(f"{raw:g} out of {top:g}")
    if scaled is not None:
        parts.append(f"{scaled:.0%}" if parts == [] else f"({scaled:.0%})")
    if doc.get("level"):
        lv = scale.get(doc["level"])
        parts.append(lv.label if lv else str(doc["level"]))
    if not parts and doc.get("success") is not None:
        parts.append("passed" if doc["success"] else "not passed")
    if not parts and doc.get("completion"):
        parts.append("completed")
    return " ".join(parts) or "no score"


def evidence_row(doc: dict[str, Any], scale: Scale, weight: float | None = None) -> dict[str, Any]:
    iso, day = when(doc.get("observed_at"))
    act = doc.get("activity") or {}
    prov = doc.get("provenance") or {}
    artifacts = [u for u in (safe_url(a) for a in doc.get("artifacts") or ()) if u]
    return {
        "id": doc.get("id"), "iso": iso, "day": day,
        "activity": act.get("title") or act.get("id") or KINDS.get(doc.get("evidence_kind") or "", "Work"),
        "activity_url": safe_url(act.get("id")),
        "kind": KINDS.get(doc.get("evidence_kind") or "", "Work"),
        "score": score_text(doc, scale),
        "source": prov.get("system") or "unknown",
        "source_words": SOURCES.get(prov.get("standard") or "", prov.get("standard") or ""),
        "artifacts": artifacts, "weight": weight,
    }


__all__ = ["KINDS", "METHODS", "NOT_STARTED", "PLAN_STATUS", "SOURCES", "TARGET_STATUS", "TOO_LITTLE", "TRAIL", "Badge", "badge",
           "evidence_row", "safe_url", "score_text", "when", "why"]
