"""Scopes: what a client may do. OneRoster 1.2 scope names where they exist.

``IMPLIES`` is applied one level deep (``expand``): a scope that implies a scope which
implies others lists them all.

Tokens carry short names. The gateway's own scopes are below; every adapter declares its
own (``Adapter.scopes``, ``Adapter.implies``, ``Adapter.scope_uri_prefixes``,
``Adapter.scope_uris``), and the
composition root (``gateway.wiring``) adds them here with ``declare`` before any client is
created or any token verified. A standard with URI scopes (OneRoster 1.2:
``https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly``) declares its prefix;
one whose URI scopes have other names than the gateway's (CASE 1.0's ``.../core.readonly``
and ``.../all.readonly``, read with ``competencies.readonly``) declares each URI's short name.
``normalize`` maps those URIs onto the short names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ConfigError

#: scope -> what it allows: the gateway's own, then whatever ``declare`` adds
SCOPES: dict[str, str] = {
    # OneRoster 1.2 rostering: what the canonical /v1 API's READ_SCOPE grants
    "roster-core.readonly": "read orgs, academic sessions, courses, sections, people and enrollments (no demographics)",
    "roster.readonly": "everything roster-core.readonly allows, plus demographics",
    "roster-demographics.readonly": "read demographics",
    # Tessera's own
    "competencies.readonly": "read frameworks, competencies, relations, alignments and scales",
    "competencies.write": "import frameworks and alignments",
    "evidence.readonly": "read evidence",
    "evidence.write": "submit evidence",
    "mastery.readonly": "read mastery states, progressions and reports",
    "mastery.write": "set mastery rules and scales, run a recompute, and edit learning plans",
    "reports.deidentified": "read de-identified reports only (state pulls): pseudonymous learners, small counts suppressed",
    "records.write": "write canonical records of any kind through the batch API",
    "admin": "manage connections, routes, sync runs and dead letters of the tenant, and its data-sharing grants",
    "changes.readonly": "read the change feed: the tenant's own changes and those of districts that granted it access",
    "exports": "run bulk exports of the tenant's data and of data shared with it by grants",
    "metrics": "read the Prometheus metrics at /metrics (every tenant's route and connection names and counts)",
}

#: A scope that implies others.
IMPLIES: dict[str, frozenset[str]] = {
    "roster.readonly": frozenset({"roster-core.readonly", "roster-demographics.readonly"}),
}


#: URI prefixes whose scopes are the short name after them (``declare``)
URI_PREFIXES: list[str] = []
#: URI scopes that are another name of one short name (``declare``): CASE 1.0's
#: ``http://purl.imsglobal.org/casenetwork/case/v1p0/scope/core.readonly`` -> ``competencies.readonly``
URI_SCOPES: dict[str, str] = {}


def declare(scopes: Mapping[str, str], implies: Mapping[str, Iterable[str]] | None = None,
            uri_prefixes: Iterable[str] = (), uri_scopes: Mapping[str, str] | None = None) -> None:
    """Add scopes (name -> what it allows), what they imply, URI prefixes and URI scopes
    (URI -> the short name it stands for): the composition root calls it once per adapter.
    Declaring the same again is harmless; a name already declared with another meaning, or
    a URI standing for a scope nobody declared, is a ConfigError."""
    for name, text in scopes.items():
        if SCOPES.get(name, text) != text:
            raise ConfigError(f"scope {name!r} is declared twice with different meanings")
        SCOPES[name] = text
    for name, implied in (implies or {}).items():
        IMPLIES[name] = IMPLIES.get(name, frozenset()) | frozenset(implied)
    for prefix in uri_prefixes:
        if prefix not in URI_PREFIXES:
            URI_PREFIXES.append(prefix)
    for uri, name in (uri_scopes or {}).items():
        if name not in SCOPES or URI_SCOPES.get(uri, name) != name:
            raise ConfigError(f"scope URI {uri!r} stands for {name!r}, which is undeclared or already another scope's name")
        URI_SCOPES[uri] = name


def normalize(scopes: Iterable[str]) -> list[str]:
    """Short names, URI forms folded, order kept, duplicates dropped."""
    out: list[str] = []
    for s in scopes:
        short = URI_SCOPES.get(s) or next((s[len(p):] for p in URI_PREFIXES if s.startswith(p)), s)
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
