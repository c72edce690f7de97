"""Mastery write-back: the tenant's MasteryState records as OneRoster 1.2 assessment line
items and results, the reverse of gradebook-as-evidence (``tessera export oneroster-mastery``).
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import Iterable
from typing import Any

from gateway.errors import NotFound
from gateway.model import Competency, Person

from ..csv.cells import KNOWN_FILES, cell
from ..values import format_datetime
from .csv_files import CSV_COLUMNS, join_row

MASTERY_PREFIX = "tessera-mastery"


def mastery_objects(store: Any, tenant: str, states: Iterable[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Canonical MasteryState records -> OneRoster 1.2 (assessmentLineItems, assessmentResults,
    skipped): the reverse of gradebook-as-evidence.

    One assessment line item per competency (``tessera-mastery-<CASE GUID>``, tagged with
    its CASE identifier, results 0..1), one assessment result per (learner, competency)
    (``tessera-mastery-<student sourcedId>-<GUID>``): score = the mastery value, textScore =
    the level, and ``learningObjectiveResults`` naming the CASE GUID with the same score and
    level. The student is named by its OneRoster sourcedId (its ``oneroster.sourcedId``
    identifier, else its native id). A state whose competency has no CASE identifier is
    skipped (counted): OneRoster would have nothing to name it by."""
    line_items: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    skipped = 0
    people: dict[uuid.UUID, str] = {}
    comps: dict[uuid.UUID, Any] = {}
    for st in states:
        if st.competency_id not in comps:
            try:
                comps[st.competency_id] = store.records.get(tenant, "competency", st.competency_id)
            except NotFound:
                comps[st.competency_id] = None
        comp = comps[st.competency_id]
        if not isinstance(comp, Competency) or comp.guid is None:
            skipped += 1
            continue
        if st.learner_id not in people:
            person = store.records.get(tenant, "person", st.learner_id)
            assert isinstance(person, Person)
            people[st.learner_id] = next((i.value for i in person.identifiers if i.kind == "oneroster.sourcedId"), person.native_id)
        guid, student = str(comp.guid), people[st.learner_id]
        li_sid = f"{MASTERY_PREFIX}-{guid}"
        line_items.setdefault(li_sid, {
            "sourcedId": li_sid, "status": "active", "title": (comp.code or comp.statement)[:255],
            "description": comp.statement, "resultValueMin": 0, "resultValueMax": 1,
            "learningObjectiveSet": [{"source": "case", "learningObjectiveIds": [guid]}],
        })
        objective: dict[str, Any] = {"learningObjectiveId": guid}
        res: dict[str, Any] = {
            "sourcedId": f"{MASTERY_PREFIX}-{student}-{guid}", "status": "active",
            "dateLastModified": format_datetime(st.computed_at),
            "assessmentLineItem": {"sourcedId": li_sid, "type": "assessmentLineItem"},
            "student": {"sourcedId": student, "type": "user"},
            "scoreDate": (st.last_at or st.computed_at).date().isoformat(), "scoreStatus": "fully graded",
        }
        if st.value is not None:
            res["score"] = objective["score"] = round(st.value, 6)
        if st.level is not None:
            res["textScore"] = objective["textScore"] = st.level
        res["learningObjectiveSet"] = [{"source": "case", "learningObjectiveResults": [objective]}]
        results.append(res)
    return list(line_items.values()), results, skipped


def export_mastery_package(store: Any, out: Any, *, tenant: str) -> dict[str, int]:
    """A OneRoster 1.2 CSV package of the tenant's mastery: assessmentLineItems.csv,
    assessmentResults.csv and their learning-objective files (the other files absent)."""
    line_items, results, skipped = mastery_objects(store, tenant, store.records.iter_records(tenant, ["mastery_state"]))
    files: dict[str, list[dict[str, Any]]] = {
        "assessmentLineItems": line_items,
        "assessmentResults": results,
        "assessmentLineItemLearningObjectiveIds": [
            join_row(li["sourcedId"], f"case:{g}", li.get("dateLastModified"), source="case", learningObjectiveId=g)
            for li in line_items for g in li["learningObjectiveSet"][0]["learningObjectiveIds"]],
        "assessmentResultLearningObjectiveIds": [
            join_row(r["sourcedId"], f"case:{o['learningObjectiveId']}", r.get("dateLastModified"), source="case", **o)
            for r in results for o in r["learningObjectiveSet"][0]["learningObjectiveResults"]],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, rows in files.items():
            spec = CSV_COLUMNS["1.2"][name]
            with zf.open(f"{name}.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\r\n")
                w.writerow([c for c, _, _, _ in spec])
                for r in rows:
                    w.writerow([cell(r.get(f), t) for _, f, t, _ in spec])
        with zf.open("manifest.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerows([["propertyName", "value"], ["manifest.version", "1.0"], ["oneroster.version", "1.2"]])
            w.writerows([[f"file.{n}", "bulk" if n in files else "absent"] for n in KNOWN_FILES["1.2"]])
            w.writerows([["source.systemName", "Tessera (mastery)"], ["source.systemCode", tenant]])
    return {**{n: len(r) for n, r in files.items()}, "skipped": skipped}
