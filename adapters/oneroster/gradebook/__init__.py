"""OneRoster gradebook and resources objects: validation, storage, and gradebook-as-evidence.

The OneRoster 1.1 / 1.2 Gradebook service (categories, lineItems, results; 1.2 adds
scoreScales, assessmentLineItems, assessmentResults) and the Resources service (resources
and their class / course / user links) have no canonical kind: the objects are validated
here and kept, normalised, in the adapter's own table (``tables.objects``) so the REST
provider serves them back and the CSV export writes them out unchanged. What they MEAN
goes into the canonical model (DESIGN section 3), in the same transaction:

* a result / assessmentResult becomes ``Evidence``: learner = the student's Person;
  activity = the line item (system ``oneroster``, id ``lineItems/<sourcedId>``); score raw
  with the line item's ``resultValueMin``/``resultValueMax`` (scaled 0..1 by the model);
  ``textScore`` (or the score scale value whose right-hand side equals the score) -> level;
  ``scoreDate`` -> observed_at; status ``tobedeleted`` -> voided.
* objectives: a 1.2 result's ``learningObjectiveSet[].learningObjectiveResults`` give one
  Evidence per objective with that objective's own score; otherwise the line item's
  ``learningObjectiveSet[].learningObjectiveIds`` give one Evidence per objective with the
  result's score. An objective whose set has source ``case`` and whose id is the CASE
  identifier (GUID) of a stored Competency resolves to it; anything else keeps
  ``competency_id`` null and the objective in ``extensions`` - never dropped.
* a line item's objectives that resolve become ``Alignment`` records (target the line
  item), so evidence about the line item counts for the competency.
* evidence is append-only (``gateway.store.evidence``): a result whose score, date or level
  changes gives NEW evidence (its native id carries a digest of that content) that
  supersedes the previous one; an objective that disappears voids its evidence. The row's
  ``derived`` column remembers the current evidence per objective and the alignments.

Both bindings go through ``prepare`` + ``apply``: the CSV importer and the REST ``PUT``/
``POST``/``DELETE`` handlers build ``Item``s, and ``apply`` writes the objects and the
canonical records in ONE transaction (``store.records.apply(..., within=...)``).

The modules, in the order a batch goes through them:

* ``types``: the types, their fields and REST collections, what they reference;
* ``normalize``: one object (REST JSON or a CSV row) -> its normalised JSON and its problems;
* ``storage``: the adapter's table (``ObjectStore``) and the store lookups references resolve by;
* ``prepare``: a batch checked as a whole and its Evidence / Alignments derived (``Preparer``);
* ``apply``: a prepared ``Plan`` written in one transaction (``apply``, ``writer``, ``put_objects``);
* ``csv_files``: the CSV binding's gradebook and resources files, in (``CsvGradebook``) and out (``csv_rows``);
* ``writeback``: mastery states as assessment line items and results (``export_mastery_package``);
* ``wire``: a stored object as the REST binding shows it (``to_wire``).

Spec choices, written down:

* ``score`` is required by 1.1 results and optional in 1.2; a result with neither score nor
  textScore (``not submitted``, ``exempt``) is stored but is no evidence.
* dates keep the text the sender gave (a round trip is exact); they must parse as ISO 8601.
* a score outside the line item's [resultValueMin, resultValueMax] is invalid data.
* a ``textScore`` on a result with a score scale must be one of the scale's
  ``itemValueLHS`` values.
"""
