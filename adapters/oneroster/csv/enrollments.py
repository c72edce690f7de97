"""A streamed enrollments.csv: read in this process while it is written, or read and
prepared in a forked child process (the store's prepared-stream facility, ``Store.streams``)
while this one writes it.

The child runs the very code of the in-process path (``Importer.streamed_enrollments``:
the same fast and general paths, duplicate and reference checks, errors in the same order,
records); the store prepares what it yields as ``RecordStore.prepare`` would. The child is
forked once the files enrollments reference are read (orgs, classes, users:
``Importer.references_read``), while this process goes on with the roles, demographics and
gradebook files and builds the users. It inherits the importer as it stands: the sourcedIds
of the package, the references found stored so far, the manifest. What it leaves alone:

* the other files' references still to resolve (``pending``, ``late``): this process
  resolves them, and any problem in them fails the import here, which stops the child;
* this process's connections and open package: a forked connection shares its socket or
  file locks, and a shared zip file its read offset. The child opens its own (it sees what
  is committed, as the in-process path's lookups do from their own pooled connections).

The store does not check the enrollments' references again: the importer checked each
against the package and the store (see ``gateway.store.streams``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from gateway.errors import Deviations
from gateway.model import Record
from gateway.store.records import PreparedBatch

from .importer import Importer


class EnrollmentReader:
    """The producer of a forked stream (``gateway.store.streams.Producer``):
    ``Importer.streamed_enrollments`` in the child, its progress (bytes of enrollments.csv
    read) and its counts (rows read, records added, enrollments made tobedeleted) reported
    back to the importer here."""

    def __init__(self, imp: Importer, batch: int) -> None:
        self.imp = imp
        self.batch = batch
        #: in the child: bytes of enrollments.csv read since the last message
        self.read = 0
        self.records_before = 0
        #: in the child: the importer's deviations when it started (its own are sent back)
        self.devs_before: tuple[int, dict[str, int]] = (0, {})

    def batches(self, store: Any) -> Iterable[Iterable[Record]]:
        """In the child: the importer on the child's own store and package."""
        imp = self.imp
        imp.store = store
        imp.pkg = imp.pkg.reopen()  # the same limits
        imp.pending, imp.late = {}, []
        # the deviations of enrollments.csv alone, sent back with the summary (``on_summary``)
        imp.devs = imp.tol.devs = imp.report.deviations = Deviations(strict=imp.devs.strict, errors=imp.errors)
        imp.tol.dups = {}
        self.records_before = imp.report.records
        self.devs_before = (len(imp.devs.items), dict(imp.devs.counts))
        imp.progress = self._count
        return imp.streamed_enrollments(self.batch)

    def _count(self, _name: str, n: int) -> None:
        self.read += n

    def progress(self) -> int:
        read, self.read = self.read, 0
        return read

    def on_progress(self, read: int) -> None:
        if read and self.imp.progress is not None:
            self.imp.progress("enrollments.csv", read)

    def summary(self) -> tuple[int, int, int | None, Any]:
        report = self.imp.report
        devs = self.imp.devs  # the child's own: what its rows deviated in (references held unresolved...)
        return (report.rows["enrollments"], report.records - self.records_before, report.deleted.get("enrollment"),
                (devs.items[self.devs_before[0]:], {k: n - self.devs_before[1].get(k, 0) for k, n in devs.counts.items()},
                 self.imp.held))

    def on_summary(self, counts: tuple[int, int, int | None, Any]) -> None:
        report = self.imp.report
        report.rows["enrollments"], added, deleted, (items, kinds, unresolved) = counts
        report.records += added
        if deleted:
            report.deleted["enrollment"] = deleted
        devs = self.imp.devs
        devs.items.extend(items[:max(0, devs.limit - len(devs.items))])
        for k, n in kinds.items():
            if n:
                devs.counts[k] = devs.counts.get(k, 0) + n
        for k, names in unresolved.items():  # targets held unresolved, counted once each
            self.imp.held.setdefault(k, {}).update(names)
            report.unresolved[k] = len(self.imp.held[k])


@contextlib.contextmanager
def enrollment_batches(imp: Importer, batch: int) -> Iterator[Iterator[Iterator[Record] | PreparedBatch] | None]:
    """The enrollment batches of a streamed import (None for another), ``batch`` rows each:
    read in this process (lazy record batches, which the store prepares in its pipeline
    thread), or read and prepared in a child process (``EnrollmentReader``), which
    ``imp.run`` starts once the files that enrollments reference are read: enter it before
    ``imp.run``."""
    if not imp.stream:
        yield None
    elif not imp.report.reader_process:
        yield imp.streamed_enrollments(batch)
    else:
        stream = imp.store.streams.forked(imp.tenant, EnrollmentReader(imp, batch), name="tessera-enrollments")
        imp.references_read = stream.start
        try:
            yield stream.batches()
        finally:
            stream.close()
