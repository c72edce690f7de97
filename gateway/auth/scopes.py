"""Scopes: what a client may do. OneRoster 1.2 scope names where they exist.

Tokens carry the short names below. Adapters that speak a standard with URI scopes
(OneRoster 1.2: ``https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly``)
accept those too: ``normalize`` maps them onto the short names.
"""

from __future__ import annotations

from collections.abc import Iterable

ONEROSTER_PREFIX = "https://purl.imsglobal.org/spec/or/v1p2/scope/"

#: scope -> what it allows
SCOPES: dict[str, str] = {
    # OneRoster 1.2 rostering / gradebook / resources
    "roster-core.readonly": "read orgs, academic sessions, courses, sections, people and enrollments (no demographics)",
    "roster.readonly": "everything roster-core.readonly allows, plus demographics",
    "roster-demographics.readonly": "read demographics",
    "gradebook.readonly": "read line items, results and score scales",
    "gradebook.createput": "create and replace line items and results",
    "gradebook.delete": "delete line items and results",
    "resource.readonly": "read resources",
    # Tessera's own
    "competencies.readonly": "read frameworks, competencies, relations, alignments and scales",
    "competencies.write": "import frameworks and alignments",
    "evidence.readonly": "read evidence",
    "evidence.write": "submit evidence",
    "mastery.readonly": "read mastery states, progressions and reports",
    "mastery.write": "set mastery rules and scales, run a recompute, and edit learning plans",
    "reports.deidentified": "read de-identified reports only (state pulls): pseudonymous learners, small counts suppressed",
    "records.write": "write canonical records of any kind through the batch API",
    "admin": "manage connections, routes, sync runs and dead letters of the tenant",
    # xAPI 1.0.3 Communication 4.2 / 2.0 scopes, namespaced "xapi/" + the spec's own name
    "xapi/statements/write": "write xAPI statements",
    "xapi/statements/read": "read any xAPI statement of the tenant",
    "xapi/statements/read/mine": "read the xAPI statements these credentials stored",
    "xapi/all/read": "read everything in the LRS (statements, state, profiles, activities, agents)",
    "xapi/all": "everything in the LRS",
    "xapi/state": "read and write xAPI state documents",
    "xapi/define": "(re)define xAPI activities and actors",
    "xapi/profile": "read and write xAPI activity and agent profiles",
}

#: A scope that implies others.
IMPLIES: dict[str, frozenset[str]] = {
    "roster.readonly": frozenset({"roster-core.readonly", "roster-demographics.readonly"}),
    "xapi/all": frozenset({
        "xapi/statements/write", "xapi/statements/read", "xapi/statements/read/mine", "xapi/all/read",
        "xapi/state", "xapi/define", "xapi/profile",
    }),
    "xapi/all/read": frozenset({"xapi/statements/read", "xapi/statements/read/mine"}),
    "xapi/statements/read": frozenset({"xapi/statements/read/mine"}),
}


def normalize(scopes: Iterable[str]) -> list[str]:
    """Short names, URI forms folded, order kept, duplicates dropped."""
    out: list[str] = []
    for s in scopes:
        short = s[len(ONEROSTER_PREFIX):] if s.startswith(ONEROSTER_PREFIX) else s
        if short not in out:
            out.append(short)
    return out


def unknown(scopes: Iterable[str]) -> list[str]:
    return [s for s in normalize(scopes) if s not in SCOPES]


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes granted, with everything they imply."""
    granted = set(normalize(scopes))
    for s in list(granted):
        granted |= IMPLIES.get(s, frozenset())
    return frozenset(granted)


#: The scope that lets a client read each record kind.
READ_SCOPE: dict[str, str] = {
    "org": "roster-core.readonly",
    "academic_session": "roster-core.readonly",
    "course": "roster-core.readonly",
    "section": "roster-core.readonly",
    "person": "roster-core.readonly",
    "enrollment": "roster-core.readonly",
    "framework": "competencies.readonly",
    "competency": "competencies.readonly",
    "relation": "competencies.readonly",
    "proficiency_scale": "competencies.readonly",
    "alignment": "competencies.readonly",
    "evidence": "evidence.readonly",
    "mastery_rule": "mastery.readonly",
    "mastery_state": "mastery.readonly",
    "learning_plan": "mastery.readonly",
}
