"""Kit ``oneroster-csv-1.2``: a vendor's OneRoster 1.2 CSV package, validated offline.

``tessera conformance run oneroster-csv-1.2 --option package=PATH --report DIR`` (a zip, or a
directory holding the CSV files; no base URL). The checks are written from the OneRoster 1.2
CSV binding: the package (files at the root of the zip, UTF-8, the 1.2 file names), the
manifest (``propertyName,value``; ``manifest.version``, ``oneroster.version``,
``file.<name>`` = absent | bulk | delta, and the files it declares present exactly), the
header of each file (the binding's column names in its order), each row (field count,
sourcedId unique, required fields, status and dateLastModified, dates, years, booleans,
numbers), the enumerations, the references between files, bulk versus delta rules and a few
semantic rules (date ranges, every user has a role).

Like an importer, the kit keeps the log 1EdTech asks of CSV consumers: for each file, whether
it was imported or rejected, with every reason (file, row, column). It is written as
``csv-import-log.json`` and ``csv-import-log.txt`` beside the reports. A file is rejected
when a required check found an error in it; what optional checks find are warnings.
Row numbers count the header as row 1.

References are checked against the package: a reference into a file the package carries in
bulk must name a row of it; a reference into a delta file or a file the package does not
carry may name what the consumer already holds, and is not checked.

The checks live in two modules, imported here for their registrations on ``KIT`` (in this
order, so the ids read in order): ``oneroster_csv_package`` (the package model and column
table, the log, package and manifest checks) and ``oneroster_csv_rows`` (headers, rows,
vocabularies, references, bulk and delta, semantics).
"""

from __future__ import annotations

from . import oneroster_csv_rows  # noqa: F401 - registers the rest of the checks, after those of oneroster_csv_package
from .oneroster_csv_package import KIT

__all__ = ["KIT"]
