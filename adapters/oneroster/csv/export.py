"""A OneRoster CSV bulk package out (``export_package``): manifest.csv and one CSV per type
of the tenant's rostering records, and the gradebook and resources objects, in the columns
the version defines (OneRoster 1.1 CSV Tables section 2-4, 1.2 CSV Binding section 2-5).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import Deviations, NotFound, ValidationError
from gateway.model import Person, Record

from ..credentials import CredentialVault, profile_slot, reveal
from ..demographics import demographics_to_wire
from ..gradebook.csv_files import CSV_COLUMNS, csv_rows
from ..to_wire import UNRESOLVED_METADATA, to_wire
from ..values import normalize_version
from ..vocab import KIND_COLLECTIONS, WIRE_KINDS
from .cells import KNOWN_FILES, cell
from .columns import COLUMNS
from .export_held import report_held

EXPORT_ORDER = ["orgs", "academicSessions", "courses", "classes", "users", "userProfiles", "roles", "demographics", "enrollments",
                *CSV_COLUMNS["1.2"]]


def export_package(
    store: Any,
    out: Path | str | io.BytesIO,
    *,
    tenant: str,
    version: str = "1.2",
    source: str | None = None,
    credentials: bool = False,
    deviations: Deviations | None = None,
) -> dict[str, int]:
    """Write a bulk package (manifest.csv and one CSV per type) of the tenant's rostering
    records (of ``source`` only, when given). ``dateLastModified`` is the source's own
    (``source_updated_at``) where known, so the package re-imports to the same state.

    Passwords are left out unless ``credentials`` asks for those an import kept sealed
    (``credentials.CredentialVault``): users.csv ``password`` and credential ``metadata.*``
    columns, userProfiles.csv ``password``.

    ``deviations``, when given, receives one ``unresolved-reference`` per reference the
    package writes to a record it does not carry (held unresolved since its import:
    ``export_held``); a ``--strict`` import of the package refuses exactly those."""
    version = normalize_version(version)
    kinds = list(KIND_COLLECTIONS)
    records: dict[str, list[Record]] = {k: [] for k in kinds}
    names: dict[tuple[str, Any], str] = {}
    for rec in store.records.iter_records(tenant, kinds):
        if source is not None and rec.source != source:
            continue
        records[rec.KIND].append(rec)
        names[(rec.KIND, rec.id)] = rec.native_id
    clash: dict[tuple[str, str], str] = {}
    for kind, recs in records.items():
        for r in recs:
            other = clash.setdefault((kind, r.native_id), r.source)
            if other != r.source:
                raise ValidationError(f"{kind} sourcedId {r.native_id!r} exists in sources {other!r} and {r.source!r}; "
                                      "export one source at a time (--source)")

    def sourced_id(kind: str, rid: Any) -> str | None:
        sid = names.get((kind, rid))
        if sid is None and store is not None:
            try:
                sid = orjson.loads(store.records.get_json(tenant, kind, rid))["native_id"]
            except NotFound:
                return None
            names[(kind, rid)] = sid
        return sid

    if deviations is not None:
        report_held(store, tenant, records, source, deviations)
    secrets = CredentialVault(store.engine).read(tenant, [p.id for p in records["person"] if p.id]) if credentials else {}
    counts: dict[str, int] = {}
    cols = COLUMNS[version]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        written: dict[str, str] = {}
        for name in EXPORT_ORDER:
            if name not in cols:
                continue
            rows = _rows_for(name, records, version, sourced_id, secrets)
            if rows is None and name in CSV_COLUMNS[version]:
                found = csv_rows(store, tenant, name, version, source)
                rows = iter(found) if found else None
            if rows is None:
                continue
            spec = cols[name]
            extra_meta: list[str] = []
            rows = list(rows)
            for r in rows:
                for k in (r.get("metadata") or {}):
                    if f"metadata.{k}" not in extra_meta:
                        extra_meta.append(f"metadata.{k}")
            with zf.open(f"{name}.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\r\n")
                w.writerow([c for c, _, _, _ in spec] + extra_meta)
                for r in rows:
                    w.writerow([cell(r.get(f), t) for _, f, t, _ in spec]
                               + [str((r.get("metadata") or {}).get(m[9:], "")) for m in extra_meta])
            counts[name] = len(rows)
            written[name] = "bulk"
        with zf.open("manifest.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(["propertyName", "value"])
            w.writerow(["manifest.version", "1.0"])
            w.writerow(["oneroster.version", version])
            for name in KNOWN_FILES[version]:
                w.writerow([f"file.{name}", written.get(name, "absent")])
            w.writerow(["source.systemName", "Tessera"])
            w.writerow(["source.systemCode", source or tenant])
    return counts


def _rows_for(name: str, records: dict[str, list[Record]], version: str, sourced_id: Callable[[str, Any], str | None],
              secrets: dict[Any, dict[str, str]]) -> Iterator[dict[str, Any]] | None:
    if name == "users":
        return (_flatten(reveal(to_wire(r, version=version, sourced_id=sourced_id, use_source_date=True), secrets.get(r.id, {})))
                for r in records["person"])
    if name == "userProfiles":
        return (row for p in records["person"] for row in profile_rows(p, secrets.get(p.id, {})))
    if name in WIRE_KINDS:
        recs = records[WIRE_KINDS[name]]
        return (_flatten(to_wire(r, version=version, sourced_id=sourced_id, use_source_date=True)) for r in recs)
    if name == "roles":
        def gen() -> Iterator[dict[str, Any]]:
            for p in records["person"]:
                wire = to_wire(p, version=version, sourced_id=sourced_id, use_source_date=True)
                for i, role in enumerate(wire.get("roles", [])):
                    row = dict(role)
                    row.setdefault("sourcedId", f"{p.native_id}-role-{i + 1}")
                    row["user"] = {"sourcedId": p.native_id}
                    yield _flatten(row)
        return gen()
    if name == "demographics":
        people = [p for p in records["person"] if isinstance(p, Person) and p.demographics is not None]
        return (_flatten(demographics_to_wire(p, version=version) or {}) for p in people)
    return None


def profile_rows(p: Record, secrets: dict[str, str]) -> Iterator[dict[str, Any]]:
    """userProfiles.csv rows of a person: one per profile and credential (the CSV binding
    holds one credential a row; a second credential of one profile gets the sourcedId
    ``<profileId>.<n>``), with the CSV-only parts an import kept and, when given, the
    sealed passwords."""
    ext = p.extensions.get("oneroster") or {}
    kept = ext.get("_userProfileRows") or {}
    for prof in ext.get("userProfiles") or []:
        pid = str(prof.get("profileId"))
        creds = prof.get("credentials") or [{}]
        for n, cred in enumerate(creds):
            row: dict[str, Any] = {**(kept.get(pid) or {}), "sourcedId": pid if n == 0 else f"{pid}.{n}",
                                   "user": {"sourcedId": p.native_id}, "credentialType": cred.get("type"),
                                   "username": cred.get("username"), "password": secrets.get(profile_slot(pid, n))}
            row.update({k: prof.get(k) for k in ("profileType", "vendorId", "applicationId", "description")})
            yield row


def _flatten(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and UNRESOLVED_METADATA in meta:  # a read's annotation, not data: the package is as sent
        out["metadata"] = {k: v for k, v in meta.items() if k != UNRESOLVED_METADATA}
    if isinstance(out.get("enabledUser"), bool):
        out["enabledUser"] = "true" if out["enabledUser"] else "false"
    if isinstance(out.get("primary"), bool):
        out["primary"] = "true" if out["primary"] else "false"
    ids = out.get("userIds")
    if isinstance(ids, list):
        out["userIds"] = ",".join(f"{{{u['type']}:{u['identifier']}}}" for u in ids)
    return out
