"""cmi5: what the xAPI profile for LMS-launched content adds to a statement's meaning.

cmi5 (9.6) puts a launch's facts in every statement's context: the ``registration``, a
``sessionid`` extension, and, on the LMS's "launched" statement, the ``launchMode``,
``masteryScore`` and ``moveOn`` the AU was launched with. Two of the evidence rules come
from there:

- statements made in a Browse or Review launch are not evidence (cmi5 10.2.2: in those
  modes the AU "MUST NOT" record completion or success; what the learner does is looking,
  not showing);
- a "passed"/"failed" with a scaled score is judged against the masteryScore (cmi5 9.3.4,
  9.3.5: passed means scaled >= masteryScore, failed means scaled < masteryScore).

An AU's own statements usually carry neither launchMode nor (outside passed/failed)
masteryScore, so the launched statement's values are remembered per session id in
``xapi_cmi5_sessions`` (written in the statement's own transaction) and looked up for the
session's later statements, in one query per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from .document_tables import xapi_cmi5_sessions

CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/moveon"
SESSION_ID = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
MASTERY_SCORE = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
LAUNCH_MODE = "https://w3id.org/xapi/cmi5/context/extensions/launchmode"
MOVE_ON = "https://w3id.org/xapi/cmi5/context/extensions/moveon"
LAUNCHED = "http://adlnet.gov/expapi/verbs/launched"
PASSED = "http://adlnet.gov/expapi/verbs/passed"
FAILED = "http://adlnet.gov/expapi/verbs/failed"

#: cmi5 10.2.2 launchMode values in which the learner's statements are not evidence.
NOT_EVIDENCE_MODES = frozenset({"Browse", "Review"})


@dataclass(frozen=True)
class Session:
    """What the launched statement of one AU session said (cmi5 9.6.3)."""

    session_id: str
    registration: UUID | None = None
    launch_mode: str | None = None
    mastery_score: float | None = None
    move_on: str | None = None
    launched_at: datetime | None = None


@dataclass(frozen=True)
class Cmi5Context:
    """The cmi5 facts of one statement, its session's filled in where it is silent."""

    session_id: str
    defined: bool  # carries the cmi5 category activity: a "cmi5 defined" statement (7.1.3)
    registration: str | None
    launch_mode: str | None
    mastery_score: float | None
    move_on: str | None

    @property
    def is_evidence_mode(self) -> bool:
        """cmi5 10.2.2: only a Normal launch (or an unknown one) records learning."""
        return self.launch_mode not in NOT_EVIDENCE_MODES

    def judge(self, verb: str, scaled: float | None) -> bool | None:
        """cmi5 9.3.4 / 9.3.5: a passed/failed with a scaled score and a known masteryScore
        is decided by the score; None when the rule does not apply (the verb then decides)."""
        if verb not in (PASSED, FAILED) or scaled is None or self.mastery_score is None:
            return None
        return scaled >= self.mastery_score

    def as_extension(self) -> dict[str, Any]:
        out: dict[str, Any] = {"session_id": self.session_id, "defined": self.defined}
        for name in ("registration", "launch_mode", "mastery_score", "move_on"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def session_id_of(statement: Mapping[str, Any]) -> str | None:
    """The cmi5 session id of a statement (cmi5 9.6.3.1), None for a non-cmi5 statement."""
    ext = (statement.get("context") or {}).get("extensions") or {}
    sid = ext.get(SESSION_ID)
    return sid if isinstance(sid, str) and sid else None


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _string(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def launched_session(statement: Mapping[str, Any], launched_at: datetime | None) -> Session | None:
    """The session a cmi5 "launched" statement opens (cmi5 9.3.1, 9.6.3), else None."""
    if (statement.get("verb") or {}).get("id") != LAUNCHED:
        return None
    sid = session_id_of(statement)
    if sid is None:
        return None
    ctx = statement.get("context") or {}
    ext = ctx.get("extensions") or {}
    reg = ctx.get("registration")
    return Session(
        session_id=sid,
        registration=UUID(reg) if isinstance(reg, str) else None,
        launch_mode=_string(ext.get(LAUNCH_MODE)),
        mastery_score=_number(ext.get(MASTERY_SCORE)),
        move_on=_string(ext.get(MOVE_ON)),
        launched_at=launched_at,
    )


#: the session of a statement whose session is not stored: every value unknown
_NO_SESSION = Session("")


def context_of(statement: Mapping[str, Any], session: Session | None) -> Cmi5Context | None:
    """The cmi5 context of a statement (its own values first, then its session's)."""
    sid = session_id_of(statement)
    if sid is None:
        return None
    ctx = statement.get("context") or {}
    ext = ctx.get("extensions") or {}
    categories = (ctx.get("contextActivities") or {}).get("category") or []
    if isinstance(categories, dict):  # xAPI 1.0.3 Data 2.4.6.2: a single object is allowed
        categories = [categories]
    defined = any(isinstance(a, dict) and a.get("id") == CATEGORY for a in categories)
    s = session or _NO_SESSION
    launch_mode = _string(ext.get(LAUNCH_MODE)) or s.launch_mode
    mastery = _number(ext.get(MASTERY_SCORE))
    return Cmi5Context(
        session_id=sid,
        defined=defined,
        registration=ctx.get("registration"),
        launch_mode=launch_mode,
        mastery_score=mastery if mastery is not None else s.mastery_score,
        move_on=_string(ext.get(MOVE_ON)) or s.move_on,
    )


def load_sessions(conn: Connection, tenant: str, session_ids: Iterable[str]) -> dict[str, Session]:
    """The stored sessions among ``session_ids`` (one query per 400 ids)."""
    ids = list(dict.fromkeys(session_ids))
    tbl = xapi_cmi5_sessions
    out: dict[str, Session] = {}
    for i in range(0, len(ids), 400):
        q = select(tbl).where(tbl.c.tenant == tenant, tbl.c.session_id.in_(ids[i : i + 400]))
        for r in conn.execute(q):
            out[r.session_id] = Session(r.session_id, r.registration, r.launch_mode, r.mastery_score, r.move_on, r.launched_at)
    return out


def save_sessions(conn: Connection, tenant: str, sessions: Iterable[Session]) -> None:
    """Record new sessions; a session already known keeps its first launched statement
    (cmi5 9.3.1: the LMS MUST NOT issue more than one per session)."""
    fresh = {s.session_id: s for s in sessions if len(s.session_id) <= 512}
    if not fresh:
        return
    rows = [
        {"tenant": tenant, "session_id": s.session_id, "registration": s.registration, "launch_mode": s.launch_mode,
         "mastery_score": s.mastery_score, "move_on": s.move_on, "launched_at": s.launched_at}
        for s in fresh.values()
    ]
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(dialect_insert(xapi_cmi5_sessions).on_conflict_do_nothing(), rows)
