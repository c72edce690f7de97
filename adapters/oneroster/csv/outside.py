"""What a OneRoster CSV import does with what lies outside its package (issue 15): references
to records in neither the package nor the store, deletions of records never stored, and
rows that belong to a user who is neither (``Outside``, a part of ``importer.Importer``).

Tolerant (the default): a reference is kept and held unresolved (``gateway.store.unresolved``):
the record is stored, its reference is the id its target will have, and a later package
from the same source storing the target resolves it with nothing rewritten; reads show it
unresolved until then (OneRoster REST: ``metadata["tessera.unresolved"]``; canonical API:
``extensions["unresolved"]``). A deletion of nothing is skipped. Each is one warning in
``ImportReport.deviations``. ``--strict`` refuses them with the errors they always were.

One reading each: a held reference is exactly what was sent, its target unknown here; a
``tobedeleted`` row asks that the record not be there, which already holds. A demographics
or 1.2 roles row of an unknown user has no record to be kept on (Tessera invents no user):
it is not kept, and the warning says so.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Deviations, ErrorCollector
from gateway.model import Person, Record, record_id
from gateway.store.unresolved import KEY, hold

from .columns import FILE_OF_KIND


class Outside:
    """The importer's handling of what lies outside its package (see the module docstring)."""

    tenant: str
    source: str
    errors: ErrorCollector
    devs: Deviations
    records: list[Record]
    report: Any
    #: target kind -> id -> sourcedId of the references held unresolved
    held: dict[str, dict[Any, str]]

    def unresolved_reference(self, kind: str, sid: str, loc: str, col: str) -> None:
        """A reference to ``sid`` of ``kind``, in neither the package nor the store, first named
        at ``loc``. Strict: the error it always was. Tolerant: one ``unresolved-reference``
        warning, and every record naming it keeps it, held unresolved (``hold_references``):
        the reference is the target's id, which a later package storing the target resolves."""
        wire = FILE_OF_KIND[kind]
        what = f"{col} {sid!r}: no such {wire[:-1] if kind != 'section' else 'class'} in {wire}.csv or the store"
        if self.devs.strict:
            self.errors.add(what, location=loc, field=col)
            return
        self.devs.tolerate("unresolved-reference", f"{what}; kept as an unresolved reference", location=loc, field=col)
        names = self.held.setdefault(kind, {})
        names[record_id(self.tenant, kind, self.source, sid)] = sid
        self.report.unresolved[kind] = len(names)

    def hold_references(self) -> None:
        """Tolerant: every record of the import naming a target held unresolved lists it
        (``extensions["unresolved"]``), so that the store keeps it and reads show it
        (streamed enrollments: in ``enrollment_row``). A 1.2 user's ``primaryOrg`` (kept as
        sent, with no canonical twin) is listed the same way."""
        if not self.held:
            return
        orgs = self.held.get("org", {})
        by_sid = {sid: rid for rid, sid in orgs.items()}
        for i, rec in enumerate(self.records):
            got = hold(rec, self.held)
            primary = (rec.extensions.get("oneroster") or {}).get("primaryOrg") if isinstance(rec, Person) else None
            rid = by_sid.get(str(primary.get("sourcedId"))) if isinstance(primary, dict) else None
            if rid is not None:
                entry = {"field": "primaryOrg", "kind": "org", "id": str(rid), "native_id": orgs[rid]}
                got = got.model_copy(update={"extensions": {**got.extensions, KEY: [*got.extensions.get(KEY, []), entry]}})
            if got is not rec:
                self.records[i] = got

    def nothing_to_delete(self, kind: str, sid: str, loc: str) -> None:
        """A delta ``tobedeleted`` row for a record neither stored nor in the import: what it
        asks (that the record not be there) already holds. Strict: an error naming the row;
        tolerant: the row is skipped with a ``nothing-to-delete`` warning."""
        what = f"row deletes {FILE_OF_KIND[kind][:-1] if kind != 'section' else 'class'} {sid!r}, which is neither stored nor in this import"
        if self.devs.strict:
            self.errors.add(what, location=loc, field="status")
        else:
            self.devs.tolerate("nothing-to-delete", f"{what}: nothing to delete, row skipped", location=loc, field="status")

    def orphan_row(self, what: str, loc: str, col: str) -> None:
        """A row that is part of a user (demographics, 1.2 roles) whose user is in neither the
        package nor the store: there is no record to keep it on, and Tessera invents none.
        Strict: an error; tolerant: not kept, with an ``orphan-row`` warning."""
        if self.devs.strict:
            self.errors.add(what, location=loc, field=col)
        else:
            self.devs.tolerate("orphan-row", f"{what}: row not kept (send it again with its user)", location=loc, field=col)
