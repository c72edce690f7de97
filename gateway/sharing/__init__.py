"""Data sharing with state agencies and research partners (issue "State agencies").

* ``grants``: a district tenant grants another tenant access, for a purpose, from a date to
  a date, limited to scopes and record kinds, de-identified or not; every read under a
  grant is logged, and a revoked grant stops access at once;
* ``feed``: the change feed across tenants (own changes, and those of every district that
  granted the reader), in the safe version order of ``gateway.store.changefeed``;
* ``deidentify``: what a de-identified grant does to a record (pseudonyms per recipient,
  personal fields dropped);
* ``columns``: each kind's columns from the canonical JSON Schemas, and stored records
  decoded into structs of just those columns, drawn from whole batches (``columnize``);
* ``record_texts``: the record decoders, and the feed's de-identified records written back
  as JSON text (msgspec and the standard library only: the feed's worker runs it too);
* ``feed_records``, ``feed_worker``: the feed's de-identified records made by a worker
  process of the reader's while the page's process reads and shapes the next chunks;
* ``export``: bulk export to Parquet, NDJSON or CSV with a manifest, streamed, a large kind
  optionally in parts by several processes in one snapshot;
* ``export_decode``: an export file's decoder, which decodes the text columns whose values
  repeat against the values it has seen (no string made a row);
* ``pseudonym_helper``: the export's helper process that makes the records' pseudonyms
  while the converting thread goes on (HMACs hold the interpreter's lock);
* ``jobs``: exports asked through the API, one per grant across processes (a lease row);
* ``reports``: aggregate, de-identified mastery reports of every district that granted them.
"""
