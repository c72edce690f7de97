"""OneRoster 1.1 / 1.2 CSV binding: bulk and delta packages in, bulk packages out.

A package is a zip file or a directory holding ``manifest.csv`` and one CSV file per
OneRoster type (OneRoster 1.1 CSV Tables section 2-4, 1.2 CSV Binding section 2-5). The
whole package is applied in ONE transaction: any error, and nothing changes. Every problem
is reported with its file, row and column.

The modules, in the order an import goes through them:

* ``package``: the zip or directory, and ``manifest.csv`` (``Package``, ``read_manifest``);
* ``limits``: the limits a package is held to before and while it is read (zip bombs,
  endless lines), and its bounded line reader (``LimitedText``);
* ``cells``: how a column converts, and the files each version defines (shared with
  ``gradebook.csv_files``);
* ``columns``: the rostering files' columns, reading order and references;
* ``importer``: every file read, checked and converted into records (``Importer``);
* ``profiles``: 1.2 userProfiles.csv onto the users, and every row's passwords taken out
  (dropped and counted, or held to be sealed: ``credentials``);
* ``fast_rows``: the fast path of a streamed enrollments.csv's common rows (``EnrollmentRows``);
* ``enrollments``: a streamed enrollments.csv, read in this process or in a child process
  (``EnrollmentReader`` on the store's prepared streams);
* ``ingest``: ``parse_package`` (validate only) and ``import_package`` (validate and apply);
* ``export``: ``export_package``, a bulk package of what the store holds.

The gradebook and resources files are read and written by ``gradebook.csv_files``, called
from ``importer`` and ``export``.
"""
