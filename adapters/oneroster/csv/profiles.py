"""OneRoster 1.2 ``userProfiles.csv`` and the credentials of an import (the importer's part
of ``credentials``).

* ``userProfiles.csv`` (1.2 CSV Binding; columns sourcedId, status, dateLastModified,
  userSourcedId, profileType, vendorId, applicationId, description, credentialType,
  username, password): each row is one profile of a user with one credential; it becomes
  an item of the REST user's ``userProfiles`` (``profileId`` is the row's sourcedId;
  ``credentials: [{type, username}]``), kept on the canonical person in
  ``extensions["oneroster"]["userProfiles"]`` (the canonical model has no field for the
  accounts a person has in other applications, and only OneRoster uses them). The CSV-only
  parts of a row (its dateLastModified, status, metadata.* columns) are kept beside them
  (``_userProfileRows``) so the export writes the row back unchanged.
* a user's profiles change only through userProfiles.csv: a package without the file
  leaves the stored ones as they are (a users.csv row rebuilds the person, its profiles
  are carried over); a bulk file replaces every profile of the source's users, a delta
  file adds, replaces (by sourcedId) and, with ``tobedeleted``, removes single profiles.
* secrets: every row of every file is read through ``take_secrets`` before anything else
  sees it: the ``password`` columns of users.csv and userProfiles.csv and credential-like
  ``metadata.*`` columns are taken out of the row. By default they are dropped and counted
  (``ImportReport.dropped_credentials``, file and column -> rows); with ``keep="sealed"``
  the users' secrets are kept sealed instead (``ImportReport.sealed_credentials``,
  ``vault_writer``), written in the import's own transaction. What a user's rows name
  replaces what is stored for that user: a users.csv row its password and metadata
  secrets, a userProfiles.csv row its profile's; a user going ``tobedeleted`` loses all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection

from gateway.model import Person, Status, record_id

from ..credentials import PASSWORD, PROFILES, CredentialVault, is_credential_name, metadata_slot, profile_slot
from ..settings import KeepCredentials
from ..values import parse_datetime, ref_id
from .columns import COLUMNS


class Importer(Protocol):
    """What ``UserProfiles`` uses of ``importer.Importer`` (named here: the importer imports this module)."""

    store: Any
    tenant: str
    source: str
    version: str
    records: list[Any]
    report: Any
    errors: Any

    def mode(self, name: str) -> str: ...

    def check_refs(self, name: str, obj: dict[str, Any], location: str) -> None: ...

    def stored_person(self, sid: str) -> Person | None: ...

#: (CSV column, row field) of userProfiles.csv that every row must fill
_REQUIRED = (("sourcedId", "sourcedId"), ("userSourcedId", "user"), ("profileType", "profileType"), ("vendorId", "vendorId"),
             ("credentialType", "credentialType"), ("username", "username"))


class UserProfiles:
    """The userProfiles.csv rows and the secrets of one import (``Importer.profiles``)."""

    def __init__(self, imp: Importer) -> None:
        self.imp = imp
        self.keep: KeepCredentials = "drop"
        #: user sourcedId -> its userProfiles.csv rows (REST-shaped) and locations
        self.rows: dict[str, list[tuple[dict[str, Any], str]]] = {}
        self.seen: dict[str, str] = {}
        #: user sourcedId -> slot -> secret (kept only when ``keep == "sealed"``)
        self.secrets: dict[str, dict[str, str]] = {}
        #: user sourcedId -> the stored slots this import replaces (``CredentialVault.writer``)
        self.covered: dict[str, set[str]] = {}

    # ---- secrets ------------------------------------------------------------------------

    def take_secrets(self, name: str, obj: dict[str, Any], loc: str) -> None:
        """Take every credential out of one row (REST-shaped) of ``name``.csv: counted, and
        dropped or held to be sealed."""
        meta = obj.get("metadata")
        if meta is None and name != "users" and name != "userProfiles":
            return  # the common row of every other file: nothing to look at
        user: str | None = None
        found: list[tuple[str, str | None, Any]] = []  # (column, slot or None: not sealable, secret)
        if name == "users":
            user = obj.get("sourcedId")
            self.covered.setdefault(user or "", set()).update((PASSWORD, "metadata."))
            found.append(("password", PASSWORD, obj.pop("password", None)))
        elif name == "userProfiles":
            user = ref_id(obj.get("user"))
            found.append(("password", profile_slot(str(obj.get("sourcedId") or ""), 0), obj.pop("password", None)))
        if isinstance(meta, dict):
            for k in [k for k in meta if is_credential_name(k)]:
                found.append((f"metadata.{k}", metadata_slot(k) if name == "users" else None, meta.pop(k)))
            if not meta:
                del obj["metadata"]
        report = self.imp.report
        for column, slot, secret in found:
            if secret in (None, ""):
                continue
            key = f"{name}.csv {column}"
            if self.keep == "sealed" and slot is not None and user:
                self.secrets.setdefault(user, {})[slot] = str(secret)
                report.sealed_credentials[key] = report.sealed_credentials.get(key, 0) + 1
            else:
                report.dropped_credentials[key] = report.dropped_credentials.get(key, 0) + 1

    def vault_writer(self) -> Callable[[Connection], None] | None:
        """The import's writes of ``oneroster_credentials``, to run in its transaction (None:
        nothing to write)."""
        imp = self.imp
        if imp.store is None:
            return None
        for r in imp.records:
            if isinstance(r, Person) and r.status == Status.tobedeleted:
                self.covered[r.native_id] = {""}
                self.secrets.pop(r.native_id, None)
        self.covered.pop("", None)
        vault = CredentialVault(imp.store.engine)
        if not self.secrets and (not self.covered or vault.count(imp.tenant) == 0):
            return None

        def rid(sid: str) -> uuid.UUID:
            return record_id(imp.tenant, "person", imp.source, sid)

        return vault.writer(imp.tenant, {rid(s): c for s, c in self.covered.items()},
                            {rid(s): v for s, v in self.secrets.items()})

    # ---- userProfiles.csv ----------------------------------------------------------------

    def read(self, obj: dict[str, Any], loc: str) -> None:
        """Check one userProfiles.csv row and hold it for its user."""
        imp = self.imp
        deleting = obj.get("status") == "tobedeleted" and imp.mode("userProfiles") == "delta"
        for col, f in _REQUIRED:
            if not obj.get(f) and (not deleting or col in ("sourcedId", "userSourcedId")):
                imp.errors.add(f"{col} is required", location=loc, field=col)
        if obj.get("status") not in (None, "active", "tobedeleted"):
            imp.errors.add(f"{obj['status']!r} is not a OneRoster status; expected active or tobedeleted", location=loc, field="status")
        if obj.get("dateLastModified"):
            try:
                parse_datetime(obj["dateLastModified"])
            except ValueError as exc:
                imp.errors.add(str(exc), location=loc, field="dateLastModified")
        sid, user = obj.get("sourcedId"), ref_id(obj.get("user"))
        if sid:
            first = self.seen.get(sid)
            if first is not None:
                imp.errors.add(f"duplicate sourcedId {sid!r} (first at {first})", location=loc, field="sourcedId")
                return
            self.seen[sid] = loc
        if not sid or not user:
            return
        self.rows.setdefault(user, []).append((obj, loc))
        self.covered.setdefault(user, set()).add(f"{PROFILES}{sid}/")

    def apply(self) -> None:
        """Put the profiles on the people: those of this import (carrying the stored profiles
        over where the package does not replace them) and stored ones the rows name."""
        imp = self.imp
        mode = imp.mode("userProfiles") if "userProfiles" in COLUMNS[imp.version] else "absent"
        people = {r.native_id: i for i, r in enumerate(imp.records) if isinstance(r, Person)}
        touched = list(dict.fromkeys([*people, *self.rows]))
        if not touched and mode != "bulk":
            return
        base = self._stored(touched) if mode != "bulk" else {}
        for sid in touched:
            i = people.get(sid)
            if i is not None:
                person: Person = imp.records[i]
            else:
                stored = imp.stored_person(sid)
                if stored is None:  # nowhere to keep the profile, and no user is invented
                    for _, loc in self.rows.get(sid, []):
                        imp.orphan_row(f"userProfiles row for user {sid!r}, which is neither in users.csv nor stored",
                                       loc, "userSourcedId")
                    continue
                person = stored.model_copy(update={"updated_at": None})
            had = base.get(sid, ([], {}))
            profiles = {str(p.get("profileId")): p for p in had[0]}
            extra = dict(had[1])
            for obj, _ in self.rows.get(sid, []):
                pid = obj["sourcedId"]
                if obj.get("status") == "tobedeleted":
                    profiles.pop(pid, None)
                    extra.pop(pid, None)
                    continue
                profiles[pid] = _profile(obj)
                csv_only = {k: obj[k] for k in ("status", "dateLastModified", "metadata") if obj.get(k)}
                if csv_only:
                    extra[pid] = csv_only
                else:
                    extra.pop(pid, None)
            if mode == "bulk":
                self.covered.setdefault(sid, set()).add(PROFILES)
            updated = _with_profiles(person, list(profiles.values()), extra)
            if i is not None:
                imp.records[i] = updated
            elif updated is not person:
                imp.records.append(updated)
                people[sid] = len(imp.records) - 1
        if mode == "bulk" and imp.store is not None:
            self._clear_others(set(touched))

    def _stored(self, sids: list[str]) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
        """user sourcedId -> its stored (profiles, CSV-only parts), for those that have any."""
        imp = self.imp
        if imp.store is None:
            return {}
        ids = {record_id(imp.tenant, "person", imp.source, s): s for s in sids}
        out: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        for rid, doc in imp.store.records.get_json_many(imp.tenant, "person", list(ids)).items():
            if "userProfiles" not in doc:
                continue  # most people have none: not worth parsing
            ext = (orjson.loads(doc).get("extensions") or {}).get("oneroster") or {}
            if ext.get("userProfiles"):
                out[ids[rid]] = (list(ext["userProfiles"]), dict(ext.get("_userProfileRows") or {}))
        return out

    def _clear_others(self, touched: set[str]) -> None:
        """Bulk: the source's stored people not in the file lose their profiles."""
        imp = self.imp
        for rec in imp.store.records.iter_records(imp.tenant, ["person"]):
            if rec.source != imp.source or rec.native_id in touched or not isinstance(rec, Person):
                continue
            if (rec.extensions.get("oneroster") or {}).get("userProfiles"):
                imp.records.append(_with_profiles(rec.model_copy(update={"updated_at": None}), [], {}))
                self.covered.setdefault(rec.native_id, set()).add(PROFILES)


def _profile(obj: dict[str, Any]) -> dict[str, Any]:
    """A userProfiles.csv row as the REST user's ``userProfiles[]`` item (1.2 UserProfile)."""
    out: dict[str, Any] = {"profileId": obj["sourcedId"], "profileType": obj.get("profileType"), "vendorId": obj.get("vendorId")}
    for k in ("applicationId", "description"):
        if obj.get(k):
            out[k] = obj[k]
    cred = {k: v for k, v in (("type", obj.get("credentialType")), ("username", obj.get("username"))) if v}
    if cred:
        out["credentials"] = [cred]
    return {k: v for k, v in out.items() if v is not None}


def _with_profiles(person: Person, profiles: list[dict[str, Any]], extra: dict[str, Any]) -> Person:
    """``person`` with these profiles (the same object when nothing changes)."""
    ext = dict(person.extensions)
    oneroster = dict(ext.get("oneroster") or {})
    before = (oneroster.get("userProfiles"), oneroster.get("_userProfileRows"))
    for key, value in (("userProfiles", profiles), ("_userProfileRows", extra)):
        if value:
            oneroster[key] = value
        else:
            oneroster.pop(key, None)
    if (oneroster.get("userProfiles"), oneroster.get("_userProfileRows")) == before:
        return person
    if oneroster:
        ext["oneroster"] = oneroster
    else:
        ext.pop("oneroster", None)
    return person.model_copy(update={"extensions": ext})


__all__ = ["UserProfiles"]
