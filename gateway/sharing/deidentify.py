"""What a de-identified grant does to a record before the grantee sees it.

**Pseudonyms.** Every id that stands for a learner, or for a record about one learner,
becomes a pseudonym for *this recipient*: ``HMAC-SHA256(K_r, ...)`` shaped as a UUID
(version 8, RFC 9562), where ``K_r = HMAC-SHA256(K, "tessera.pseudonym.v1|" + grantee)``
and ``K`` is the server's pseudonym key (``TESSERA_PSEUDONYM_KEY``, else a key file next to
the database, made on first use like the sealing key). So:

* the same learner gets the same pseudonym from every district of the state when their
  state student id matches: a person with a state id is keyed by ``state:<id>``, not by the
  district's record id (state id identifiers: OneRoster ``userIds`` of a type in
  ``STATE_ID_TYPES``, compared without case);
* two recipients get unrelated pseudonyms for the same learner (``K_r`` differs);
* without ``K`` a pseudonym cannot be reversed or recomputed, even by someone who knows a
  district's sourcedIds: a record id is a uuid5 of public parts (tenant, source, sourcedId),
  which is why person ids, and the ids of per-learner records (evidence, enrollments,
  mastery states, learning plans) and every reference to them, are all replaced.

**Fields.** Person records keep only what has no name in it: kind, status, roles, grades,
org references and timestamps; names, usernames, emails, phones, birth dates and every
other demographic, identifiers, native ids, agents' (guardians') links and extensions are
dropped. Per-learner records drop free text (titles, notes), artifacts (links to the
learner's work), assessors, native ids, identifiers and extensions. Other kinds (orgs,
courses, sections, sessions, frameworks, competencies, rules) hold no personal data and
pass unchanged.

Aggregates (``/v1/reports``) are de-identified by ``gateway.reports.deidentify`` with the
same small-cell thresholds; this module is for row-level records.

**Imports.** The database layer (SQLAlchemy, the identifier table, the key file's sealing)
is imported where a state id or the key is read, not with the module: the change feed's
de-identifying worker process (``feed_worker``) runs ``Deidentifier`` on state ids it is
sent, and starts in ~90 ms of CPU and ~20 MiB with this module, the record decoders and msgspec
alone, against ~0.9 s and ~90 MiB with the database layer and the canonical model.
"""

from __future__ import annotations

import hmac
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .pseudonym_helper import InProcessPseudonyms, PseudonymHelper, as_uuid, padded_states, record_macs, split_texts, uuid_texts

if TYPE_CHECKING:
    from sqlalchemy import Engine

ENV_KEY = "TESSERA_PSEUDONYM_KEY"
KEY_FILE_NAME = "tessera-pseudonym.key"
#: OneRoster ``userIds`` types read as a state student id (compared lower-cased)
STATE_ID_TYPES = frozenset({"state", "stateid", "state_id", "ssid", "statestudentid", "state-student-id", "sasid"})
STATE_ID_KINDS = tuple(f"oneroster.userId.{t}" for t in sorted(STATE_ID_TYPES))
_STATE_ID_KINDS_LOWER = frozenset(k.lower() for k in STATE_ID_KINDS)
#: learners whose state id and pseudonym are remembered at once (a cache, emptied when full:
#: memory stays bounded however large the district; a learner seen again is recomputed)
CACHE_MAX = 200_000
#: a look-up of at least this many learners reads all the tenant's state ids at once (``StateIds``)
READ_ALL_FROM = 500

#: kinds whose records are about one learner: field -> "learner" (a person reference) or
#: "record" (the id of another per-learner record)
PERSONAL_REFS: dict[str, dict[str, str]] = {
    "person": {"id": "learner", "agent_ids": "learner"},
    "enrollment": {"id": "record", "person_id": "learner"},
    "evidence": {"id": "record", "learner_id": "learner", "superseded_by": "record", "supersedes": "record"},
    "mastery_state": {"id": "record", "learner_id": "learner"},
    "learning_plan": {"id": "record", "learner_id": "learner"},
}
#: what each per-learner kind keeps (everything else is dropped)
KEEP: dict[str, frozenset[str]] = {
    "person": frozenset({"kind", "id", "tenant", "source", "status", "updated_at", "source_updated_at", "roles", "grades", "enabled"}),
    "enrollment": frozenset({"kind", "id", "tenant", "source", "status", "updated_at", "source_updated_at", "person_id", "section_id",
                             "org_id", "role", "primary", "begin_date", "end_date"}),
    "evidence": frozenset({"kind", "id", "tenant", "source", "status", "updated_at", "source_updated_at", "learner_id", "competency_id",
                           "alignment_id", "activity", "evidence_kind", "score", "level", "success", "completion", "observed_at",
                           "recorded_at", "voided", "superseded_by", "supersedes", "provenance"}),
    "mastery_state": frozenset({"kind", "id", "tenant", "source", "status", "updated_at", "source_updated_at", "learner_id",
                                "competency_id", "level", "value", "mastered", "method", "parameters", "rule_id", "evidence_count",
                                "first_at", "last_at", "computed_at", "contributions"}),
    "learning_plan": frozenset({"kind", "id", "tenant", "source", "status", "updated_at", "source_updated_at", "learner_id",
                                "targets", "plan_status", "pathway"}),
}


def pseudonym_key(database_url: str) -> bytes:
    """The server's pseudonym key: the environment's, else the database's key file."""
    env = os.environ.get(ENV_KEY)
    if env:
        return env.encode()
    from ..auth.sealed import key_file_for, read_or_create_key

    path = key_file_for(database_url)
    return read_or_create_key(Path(path.parent) / KEY_FILE_NAME)


def _as_uuid(digest: bytes) -> str:
    return as_uuid(digest)


def _as_uuids(digests: list[bytes]) -> list[str]:
    """``_as_uuid`` of a whole column at once (``pseudonym_helper.uuid_texts``)."""
    if len(digests) < 8:
        return [as_uuid(d) for d in digests]
    return split_texts(uuid_texts(digests))


class Pseudonymizer:
    """Pseudonyms for one recipient (see the module docstring).

    HMAC-SHA256 is computed from the key's two padded blocks hashed once (RFC 2104: ``H((K ^
    opad) || H((K ^ ipad) || m))``), each message then costing two copies of a hash state and
    two short updates: the very bytes ``hmac.digest`` gives (a test checks), at under half its
    cost (OpenSSL's one-shot HMAC sets up its key every call); this runs once per exported row."""

    def __init__(self, key: bytes, recipient: str) -> None:
        self._use(hmac.digest(key, b"tessera.pseudonym.v1|" + recipient.encode(), "sha256"))

    def _use(self, key_r: bytes) -> None:
        self.__key = key_r
        self.__inner, self.__outer = padded_states(key_r)

    def __repr__(self) -> str:
        return "Pseudonymizer(...)"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for the export's part processes, over their pipe) as the recipient's derived
        key only, never the server's key."""
        return (_pseudonymizer_of, (self.__key,))

    def _mac(self, message: bytes) -> bytes:
        inner = self.__inner.copy()
        inner.update(message)
        outer = self.__outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def learner(self, tenant: str, person_id: str, state_id: str | None) -> str:
        msg = f"state:{state_id.strip().lower()}" if state_id else f"person:{tenant}:{person_id.lower()}"
        return _as_uuid(self._mac(msg.encode()))

    def record(self, tenant: str, record_id: str) -> str:
        return _as_uuid(self._mac(f"record:{tenant}:{record_id.lower()}".encode()))

    def records(self, tenant: str, record_ids: list[str | None]) -> list[str | None]:
        """``record`` over a column (None stays None): the tenant's prefix hashed once into the
        inner state, then per value two hash-state copies and three C calls
        (``pseudonym_helper.record_macs``); the UUID texts made for the whole column at once."""
        present = _lowered([r for r in record_ids if r is not None])
        if not present:
            return list(record_ids)
        texts = _as_uuids(record_macs(self.__inner, self.__outer, f"record:{tenant}:".encode(), [r.encode() for r in present]))
        return _placed(record_ids, texts)

    def helper(self) -> PseudonymHelper:
        """A helper process that computes ``records`` of this recipient (it gets the derived
        key ``K_r`` only)."""
        return PseudonymHelper(self.__key)

    def in_process(self) -> InProcessPseudonyms:
        """What ``helper`` does, done in this process (``pseudonym_helper.InProcessPseudonyms``)."""
        return InProcessPseudonyms(self.__inner, self.__outer)


def _lowered(ids: list[str]) -> list[str]:
    """Ids compared without case: lower-cased (a column already so is left as it is)."""
    joined = "".join(ids)
    if not joined.isascii() or joined.lower() != joined:
        return [r.lower() for r in ids]
    return ids


def _placed(column: list[Any], texts: list[str]) -> list[Any]:
    """``texts`` (one a value that is not None) put where the column's values are."""
    if len(texts) == len(column):
        return list(texts)
    it = iter(texts)
    return [None if r is None else next(it) for r in column]


def _pseudonymizer_of(key_r: bytes) -> Pseudonymizer:
    made = Pseudonymizer.__new__(Pseudonymizer)
    made._use(key_r)
    return made


class StateIds:
    """Person id -> state student id, for one tenant, looked up in the identifier index.

    The first look-up of ``READ_ALL_FROM`` learners or more (an export's batch, a page of the
    feed) reads ALL the tenant's state ids in one query, not one query per 500 learners, when
    they number at most ``CACHE_MAX``: later look-ups are answered from them. Smaller look-ups,
    and every look-up in a tenant with more state ids, go by person id, 500 at a time, the
    answers remembered up to ``CACHE_MAX``."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine, self.tenant = engine, tenant
        self._known: dict[str, str | None] = {}
        #: every state id of the tenant by person id (None: not read yet, or too many to hold)
        self._all: dict[str, str] | None = None
        self._too_many = False
        #: held while state ids are read: a page read ahead and the page served look learners up
        #: at once, and a learner marked wanted must not be answered "none" before it is read
        self._lock = threading.Lock()

    def _read_all(self) -> dict[str, str] | None:
        """The tenant's state ids by person id, or None when more than ``CACHE_MAX`` exist."""
        from sqlalchemy import func, select

        from ..store.tables import identifiers

        q = select(identifiers.c.record_id, identifiers.c.kind, identifiers.c.value).where(
            identifiers.c.tenant == self.tenant, identifiers.c.record_kind == "person",
            func.lower(identifiers.c.kind).like("oneroster.userid.%")).limit(4 * CACHE_MAX + 1)
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        if len(rows) > 4 * CACHE_MAX:
            return None
        for rid, kind, value in rows:
            if kind.lower() in _STATE_ID_KINDS_LOWER:
                found[str(rid)] = value
        return None if len(found) > CACHE_MAX else found

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the database's address and the tenant: a part process of the export looks
        state ids up through its own connection."""
        return (_state_ids_at, (self.engine.url.render_as_string(hide_password=False), self.tenant))

    def load(self) -> None:
        """Read all the tenant's state ids now (unless read already, or too many to hold), as
        the first look-up of ``READ_ALL_FROM`` learners or more does: for a caller that looks a
        large batch's learners up in smaller parts (the change feed's)."""
        with self._lock:
            if self._all is None and not self._too_many:
                self._all = self._read_all()
                self._too_many = self._all is None

    def every(self) -> dict[str, str] | None:
        """All the tenant's state ids by (lower-cased) person id, read now if not yet
        (``load``); None when there are more than ``CACHE_MAX``."""
        self.load()
        return self._all

    @classmethod
    def given(cls, tenant: str, every: dict[str, str]) -> StateIds:
        """The state ids of a tenant as ``every`` gives them (another process's ``every``),
        without a database: the change feed's worker process (``feed_worker``)."""
        made = cls(None, tenant)  # type: ignore[arg-type]  # never reads: every learner's answer is in ``_all``
        made._all = every
        return made

    def of(self, person_ids: Iterable[str]) -> dict[str, str | None]:
        if self._all is None and not self._too_many and isinstance(person_ids, list | tuple | set | dict) \
                and len(person_ids) >= READ_ALL_FROM:
            self.load()
        if self._all is not None:
            every = self._all
            return {(low := p.lower()): every.get(low) for p in person_ids if p}
        with self._lock:
            wanted = {p.lower() for p in person_ids if p} - self._known.keys()
            if len(self._known) + len(wanted) > CACHE_MAX:
                self._known.clear()
                wanted = {p.lower() for p in person_ids if p}
            if wanted:
                from sqlalchemy import select

                from ..store.tables import identifiers

                ids = [uuid.UUID(p) for p in wanted]
                for p in wanted:
                    self._known[p] = None
                with self.engine.connect() as conn:
                    for i in range(0, len(ids), 500):
                        q = select(identifiers.c.record_id, identifiers.c.kind, identifiers.c.value).where(
                            identifiers.c.tenant == self.tenant, identifiers.c.record_kind == "person",
                            identifiers.c.record_id.in_(ids[i:i + 500]))
                        for rid, kind, value in conn.execute(q):
                            if kind.lower() in _STATE_ID_KINDS_LOWER:
                                self._known[str(rid)] = value
            return {p.lower(): self._known.get(p.lower()) for p in person_ids if p}


def _state_ids_at(url: str, tenant: str) -> StateIds:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return StateIds(create_engine(url, poolclass=NullPool), tenant)


class Deidentifier:
    """Turns records of one grantor tenant into what a de-identified grant shows."""

    def __init__(self, pseudonyms: Pseudonymizer, state_ids: StateIds) -> None:
        self.pseudonyms, self.state_ids = pseudonyms, state_ids
        #: person id -> pseudonym (a learner has many evidence items); bounded by the tenant's people
        self._learners: dict[str, str] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (Deidentifier, (self.pseudonyms, self.state_ids))  # the caches stay behind

    def cached(self) -> int:
        """How many learners its caches hold (pseudonyms and state ids): an export of many
        districts bounds their sum (``export_many``)."""
        ids = self.state_ids
        return len(self._learners) + len(ids._known) + len(ids._all or ())

    def forget(self) -> None:
        """Empty its caches (a learner seen again is recomputed, state ids looked up again)."""
        self._learners = {}
        self.state_ids._known = {}
        self.state_ids._all = None

    def prepare(self, docs: Iterable[dict[str, Any]]) -> None:
        """Pseudonymise every learner the records name at once (one look-up of their state
        ids), so ``record`` finds each in the cache."""
        wanted: list[str] = []
        for doc in docs:
            for fld, what in PERSONAL_REFS.get(doc.get("kind", ""), {}).items():
                if what != "learner" and not (fld == "id" and doc.get("kind") == "person"):
                    continue
                v = doc.get(fld)
                wanted.extend(v if isinstance(v, list) else [v] if isinstance(v, str) else [])
        if wanted:
            self.learners(wanted)

    def learners(self, person_ids: list[Any]) -> list[Any]:
        """The pseudonyms of a column of person ids (None stays None; a list maps each), each
        learner's computed once while it stays in the bounded cache, state ids looked up in one go.
        Safe to call from two threads at once (the answer is built from a local copy).

        Learners already cached (every batch of an export after the first few) are looked up
        once a row straight in the cache, in C: a district of 20,000 learners names ~12,700 of
        them in a batch of 20,000 records, and a set of the column and a local copy of those
        learners' pseudonyms (the way for a column with learners not yet cached, below) cost
        0.3 µs a row more than the look-ups alone."""
        cache = self._learners
        try:
            got = list(map(cache.get, person_ids))
        except TypeError:  # some values are lists of ids
            got = None
        if got is not None and None not in got:
            return got
        try:  # a column of ids (the usual case): one set made in C, the answer mapped in C
            flat = set(person_ids)
            lists = False
        except TypeError:  # some values are lists of ids
            flat = {p for v in person_ids if v is not None for p in (v if isinstance(v, list) else (v,))}
            lists = True
        flat.discard(None)
        local = {p: cache.get(p) for p in flat}
        missing = [p for p, v in local.items() if v is None]
        if missing:
            if len(cache) + len(missing) > CACHE_MAX:
                cache.clear()
            states = self.state_ids.of(missing)
            tenant, learner = self.state_ids.tenant, self.pseudonyms.learner
            for p in missing:
                local[p] = cache[p] = learner(tenant, p, states.get(p.lower()))
        if not lists:
            local[None] = None
            return list(map(local.__getitem__, person_ids))
        return [None if v is None else [local[p] for p in v] if isinstance(v, list) else local[v] for v in person_ids]

    def records(self, record_ids: list[Any]) -> list[Any]:
        """The pseudonyms of a column of per-learner record ids (None stays None; a list maps each)."""
        tenant, one = self.state_ids.tenant, self.pseudonyms.record
        try:
            return self.pseudonyms.records(tenant, record_ids)
        except (AttributeError, TypeError):  # a list among them (no kind has one today): joining the column refuses it
            pass
        return [None if v is None else [one(tenant, x) for x in v] if isinstance(v, list) else one(tenant, v) for v in record_ids]

    def records_later(self, columns: list[list[Any]], helper: PseudonymHelper) -> Callable[[], list[list[Any] | bytes]]:
        """``records`` of several columns at once, computed by ``helper`` (one request) while
        the caller goes on; the function returned waits for them and returns the columns, a
        column without None as its UUID texts' bytes (``pseudonym_helper.split_texts`` makes
        the list, ``arrow_texts`` the Arrow array). A column holding a list, or an id holding a
        newline, is done here and now instead."""
        try:
            present = [col if not col.count(None) else [r for r in col if r is not None] for col in columns]
            flat = present[0] if len(present) == 1 else [r for p in present for r in p]
            joined = "\n".join(flat)
            if not joined.isascii() or joined.lower() != joined:
                joined = "\n".join(r.lower() for r in flat)
        except (AttributeError, TypeError):  # a list among them
            joined = None
        if joined is None or joined.count("\n") != max(len(flat) - 1, 0):
            done: list[list[Any] | bytes] = [self.records(col) for col in columns]
            return lambda: done
        helper.submit(f"record:{self.state_ids.tenant}:".encode(), joined.encode(), len(flat))

        def later() -> list[list[Any] | bytes]:
            texts = helper.collect()
            out: list[list[Any] | bytes] = []
            at = 0
            for col, p in zip(columns, present, strict=True):
                part = texts[36 * at:36 * (at + len(p))]
                out.append(part if len(p) == len(col) else _placed(col, split_texts(part)))
                at += len(p)
            return out

        return later

    def contributions(self, value: Any) -> Any:
        """A mastery state's contributions with each evidence id replaced."""
        if not isinstance(value, list):
            return value
        tenant, one = self.state_ids.tenant, self.pseudonyms.record
        return [{**c, "evidence_id": one(tenant, c["evidence_id"])} if isinstance(c, dict) and c.get("evidence_id") else c
                for c in value]

    def _learner(self, person_id: str) -> str:
        found = self._learners.get(person_id)
        if found is None:
            if len(self._learners) >= CACHE_MAX:
                self._learners.clear()
            tenant = self.state_ids.tenant
            found = self._learners[person_id] = self.pseudonyms.learner(
                tenant, person_id, self.state_ids.of([person_id]).get(person_id.lower()))
        return found

    def record(self, doc: dict[str, Any]) -> dict[str, Any]:
        kind = doc.get("kind", "")
        refs = PERSONAL_REFS.get(kind)
        if refs is None:
            return doc
        tenant = self.state_ids.tenant
        keep = KEEP[kind]
        out = {k: v for k, v in doc.items() if k in keep}
        for fld, what in refs.items():
            v = out.get(fld)
            if v is None or fld not in keep and fld != "id":
                continue
            conv = self._learner if what == "learner" else (lambda x: self.pseudonyms.record(tenant, x))
            out[fld] = [conv(x) for x in v] if isinstance(v, list) else conv(v)
        if kind == "person":
            out["id"] = self._learner(doc["id"])
        if kind == "evidence":
            act = out.get("activity")
            if isinstance(act, dict):
                out["activity"] = {k: v for k, v in act.items() if k in ("system", "id")}
            prov = out.get("provenance")
            if isinstance(prov, dict):
                out["provenance"] = {k: v for k, v in prov.items() if k in ("standard", "version")}
        if kind == "mastery_state" and "contributions" in out:
            out["contributions"] = self.contributions(out.get("contributions"))
        return out


__all__ = ["ENV_KEY", "KEEP", "PERSONAL_REFS", "STATE_ID_TYPES", "Deidentifier", "Pseudonymizer", "StateIds", "pseudonym_key"]
