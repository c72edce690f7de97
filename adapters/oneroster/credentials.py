"""User passwords and other credentials: never stored by default, sealed when asked, served
only under their own scope, never filterable or sortable.

OneRoster carries user secrets in three places: the 1.1 and 1.2 ``users.csv`` ``password``
column (the REST user's ``password``), the 1.2 ``userProfiles.csv`` ``password`` column (the
REST user's ``userProfiles[].credentials[].password``), and whatever a producer puts in a
``metadata.*`` extension with a credential-like name (``metadata.pin``,
``metadata.initialPassword``). Rules, the same for the CSV import, the REST client pull
and every read:

* the canonical person never holds one: ``mapping.to_canonical`` leaves every credential
  field out (``CREDENTIAL_NAMES``), so neither ``/v1/people``, the change log, the outbox,
  an NDJSON export nor a database copy shows it;
* a CSV import drops them (``ImportReport.dropped_credentials`` counts them per file and
  column), in strict mode too: dropping is a policy, not a deviation of the file; a REST
  pull too (``PullSummary.dropped_credentials``), and it forgets the sealed ones of the
  users it reads;
* with ``TESSERA_ONEROSTER__KEEP_CREDENTIALS=sealed`` (or ``keep_credentials="sealed"``
  per import) a CSV import keeps the users' secrets instead, in ``oneroster_credentials``,
  sealed with the gateway's secret key (``gateway.auth.sealed``: ``TESSERA_SECRET_KEY`` or
  the key file); each sealed value is bound to its tenant, user and slot, so a sealed value
  copied onto another row does not open;
* the REST provider puts them back only for a token with ``roster-credentials.readonly``
  (``SCOPE``; Tessera's own, OneRoster defines none; no other scope implies it), and the
  CSV export only when asked (``credentials=True``);
* a filter or sort on a credential field (``password``, ``userProfiles.credentials.password``,
  ``metadata.pin``) is refused exactly as a field the type does not have (``query``), so
  the answer reveals nothing, whatever the caller's scopes.

Slots name where a secret goes back: ``password``, ``metadata.<name>``, and
``userProfiles/<profileId>/<n>`` (credential ``n`` of that profile).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select

from gateway.auth.sealed import Sealer, sealer_for
from gateway.model import utcnow

from .scopes import CREDENTIALS_SCOPE as SCOPE
from .tables import credentials as credentials_t

#: field names (lower case, without ``_``/``-``) that hold a secret; a name ending in
#: ``password`` is one too (``initialPassword``)
CREDENTIAL_NAMES = frozenset({"password", "passwd", "pwd", "passcode", "passphrase", "pin", "secret"})

PASSWORD = "password"
PROFILES = "userProfiles/"


def is_credential_name(name: str) -> bool:
    n = name.strip().lower().replace("_", "").replace("-", "")
    return n in CREDENTIAL_NAMES or n.endswith("password")


def is_secret_path(path: Sequence[str]) -> bool:
    """A dotted wire field (``userProfiles.credentials.password``) that reaches a credential."""
    return any(is_credential_name(p) for p in path)


def profile_slot(profile_id: str, n: int) -> str:
    return f"{PROFILES}{profile_id}/{n}"


def metadata_slot(name: str) -> str:
    return f"metadata.{name}"


def scrub_metadata(meta: Any) -> Any:
    """``metadata`` without its credential-like keys (None when nothing is left)."""
    if not isinstance(meta, dict):
        return meta
    kept = {k: v for k, v in meta.items() if not is_credential_name(str(k))}
    return kept or None


def clean_profiles(value: Any, error: Callable[[str, str], None]) -> list[dict[str, Any]]:
    """A REST user's ``userProfiles`` (OneRoster 1.2 UserProfile: profileId, profileType,
    vendorId required; applicationId, description; credentials[] of type, username and
    optional password) checked, without any secret. ``error(field, message)`` reports."""
    if value in (None, "", []):
        return []
    if not isinstance(value, list):
        error("userProfiles", "expected a list of userProfile objects")
        return []
    out: list[dict[str, Any]] = []
    for i, p in enumerate(value):
        if not isinstance(p, dict):
            error(f"userProfiles[{i}]", "expected an object with profileId, profileType and vendorId")
            continue
        for req in ("profileId", "profileType", "vendorId"):
            if p.get(req) in (None, ""):
                error(f"userProfiles[{i}].{req}", f"{req} is required")
        item = {k: v for k, v in p.items() if k != "credentials" and not is_credential_name(k) and v not in (None, "")}
        creds = p.get("credentials") or []
        if not isinstance(creds, list):
            error(f"userProfiles[{i}].credentials", "expected a list of credential objects")
            creds = []
        kept = []
        for j, c in enumerate(creds):
            if not isinstance(c, dict):
                error(f"userProfiles[{i}].credentials[{j}]", "expected an object with type and username")
                continue
            for req in ("type", "username"):
                if c.get(req) in (None, ""):
                    error(f"userProfiles[{i}].credentials[{j}].{req}", f"{req} is required")
            kept.append({k: v for k, v in c.items() if not is_credential_name(k) and v not in (None, "")})
        if kept:
            item["credentials"] = kept
        out.append(item)
    return out


def profile_secrets(value: Any) -> dict[str, str]:
    """slot -> secret of a REST user's ``userProfiles`` (what ``clean_profiles`` leaves out)."""
    out: dict[str, str] = {}
    if not isinstance(value, list):
        return out
    for p in value:
        if not isinstance(p, dict) or not p.get("profileId"):
            continue
        for j, c in enumerate(p.get("credentials") or []):
            if isinstance(c, dict) and c.get("password") not in (None, ""):
                out[profile_slot(str(p["profileId"]), j)] = str(c["password"])
    return out


def secret_fields(obj: Any) -> list[str]:
    """The credential fields a REST user object fills (``password``, ``metadata.pin``,
    ``userProfiles.credentials.password``): what ``mapping`` will leave out."""
    if not isinstance(obj, dict):
        return []
    out = [k for k, v in obj.items() if is_credential_name(k) and v not in (None, "")]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out += [f"metadata.{k}" for k, v in meta.items() if is_credential_name(str(k)) and v not in (None, "")]
    if profile_secrets(obj.get("userProfiles")):
        out.append("userProfiles.credentials.password")
    return out


def reveal(obj: dict[str, Any], secrets: Mapping[str, str], fields: Sequence[str] | None = None) -> dict[str, Any]:
    """Put a user's secrets back into its wire object (a copy), within the selected ``fields``."""
    if not secrets:
        return obj
    out = dict(obj)
    want = set(fields) if fields else None
    for slot, value in secrets.items():
        if slot == PASSWORD:
            if want is None or PASSWORD in want:
                out[PASSWORD] = value
        elif slot.startswith("metadata."):
            if want is None or "metadata" in want:
                out["metadata"] = {**(out.get("metadata") or {}), slot[9:]: value}
        elif slot.startswith(PROFILES) and (want is None or "userProfiles" in want):
            pid, _, n = slot[len(PROFILES):].rpartition("/")
            profiles = [dict(p) for p in out.get("userProfiles") or []]
            for p in profiles:
                creds = [dict(c) for c in p.get("credentials") or []]
                if str(p.get("profileId")) == pid and n.isdigit() and int(n) < len(creds):
                    creds[int(n)]["password"] = value
                    p["credentials"] = creds
            out["userProfiles"] = profiles
    return out


class CredentialVault:
    """The sealed secrets of ``oneroster_credentials``: read for entitled callers and
    exports; written in an import's transaction (``writer``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def sealer(self) -> Sealer:
        """Looked up when used, so reading nothing creates no key file."""
        return sealer_for(self.engine.url.render_as_string(hide_password=False))

    @staticmethod
    def _context(tenant: str, person_id: uuid.UUID, slot: str) -> list[str]:
        return [tenant, str(person_id), slot]

    def seal(self, tenant: str, person_id: uuid.UUID, slot: str, secret: str) -> str:
        return self.sealer.seal(orjson.dumps([*self._context(tenant, person_id, slot), secret]).decode())

    def open(self, tenant: str, person_id: uuid.UUID, slot: str, sealed: str) -> str | None:
        """The secret, or None when the sealed value belongs to another row."""
        got = orjson.loads(self.sealer.open(sealed))
        if not isinstance(got, list) or got[:3] != self._context(tenant, person_id, slot):
            return None
        return str(got[3])

    def read(self, tenant: str, person_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
        """person id -> slot -> secret, for the people that have any."""
        ids = list(dict.fromkeys(person_ids))
        out: dict[uuid.UUID, dict[str, str]] = {}
        if not ids:
            return out
        c = credentials_t.c
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(c.person_id, c.slot, c.secret_sealed).where(c.tenant == tenant, c.person_id.in_(ids[i:i + 500]))
                for r in conn.execute(q):
                    clear = self.open(tenant, r.person_id, r.slot, r.secret_sealed)
                    if clear is not None:
                        out.setdefault(r.person_id, {})[r.slot] = clear
        return out

    def count(self, tenant: str, *, conn: Connection | None = None) -> int:
        """How many secrets the tenant has (in ``conn``'s transaction when given)."""
        q = select(func.count()).select_from(credentials_t).where(credentials_t.c.tenant == tenant)
        if conn is not None:
            return int(conn.scalar(q) or 0)
        with self.engine.connect() as c:
            return int(c.scalar(q) or 0)

    def writer(self, tenant: str, clear: Mapping[uuid.UUID, Iterable[str]],
               keep: Mapping[uuid.UUID, Mapping[str, str]]) -> Callable[[Connection], None]:
        """The ``within`` callback of an import: for each person, delete the slots ``clear``
        names (a slot, or a prefix ending in ``/`` or ``.``; ``""`` is every slot), then
        store ``keep``'s secrets, sealed here (before the transaction)."""
        now = utcnow()
        rows = [dict(tenant=tenant, person_id=pid, slot=slot, secret_sealed=self.seal(tenant, pid, slot, secret), updated_at=now)
                for pid, secrets in keep.items() for slot, secret in secrets.items()]
        c = credentials_t.c

        def match(slot: str) -> Any:
            if slot == "":
                return c.slot == c.slot
            if slot.endswith(("/", ".")):
                return func.substr(c.slot, 1, len(slot)) == slot
            return c.slot == slot

        def write(conn: Connection) -> None:
            targets = {pid: set(slots) for pid, slots in clear.items()}
            for pid in keep:
                targets.setdefault(pid, set()).update(keep[pid])
            by_pattern: dict[frozenset[str], list[uuid.UUID]] = {}
            for pid, wanted in targets.items():
                if wanted:
                    by_pattern.setdefault(frozenset(wanted), []).append(pid)
            for pattern, pids in by_pattern.items():
                cond = or_(*(match(s) for s in sorted(pattern)))
                for i in range(0, len(pids), 500):
                    conn.execute(delete(credentials_t).where(and_(c.tenant == tenant, c.person_id.in_(pids[i:i + 500]), cond)))
            for i in range(0, len(rows), 1000):
                conn.execute(insert(credentials_t), rows[i:i + 1000])

        return write


__all__ = [
    "CREDENTIAL_NAMES", "PASSWORD", "PROFILES", "SCOPE", "CredentialVault", "clean_profiles", "is_credential_name",
    "is_secret_path", "metadata_slot", "profile_secrets", "profile_slot", "reveal", "scrub_metadata", "secret_fields",
]
