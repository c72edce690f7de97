"""The cells of the OneRoster CSV binding, shared by the rostering files (this package) and
the gradebook and resources files (``gradebook.csv_files``): how a column converts, and the
files each version's manifest may name.

OneRoster 1.1 CSV Tables section 2-4, 1.2 CSV Binding section 2-5: a GUIDRef column holds
the sourcedId; a list column holds its values comma separated.
"""

from __future__ import annotations

from typing import Any

from ..values import ref_id

# conversion of a column: "s" string, "ref" one GUIDRef, "refs" GUIDRef list, "list" string list
S, REF, REFS, LIST = "s", "ref", "refs", "list"

#: Files each version defines (manifest ``file.<name>``); those the importer reads are columns.COLUMNS'.
KNOWN_FILES = {
    "1.1": ["academicSessions", "categories", "classes", "classResources", "courses", "courseResources", "demographics",
            "enrollments", "lineItems", "orgs", "resources", "results", "users"],
    "1.2": ["academicSessions", "assessmentLineItems", "assessmentResults", "categories", "classes", "classResources",
            "courses", "courseResources", "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems",
            "assessmentLineItemLearningObjectiveIds", "assessmentResultLearningObjectiveIds",
            "lineItemScoreScales", "orgs", "resources", "results", "resultLearningObjectiveIds", "resultScoreScales",
            "roles", "scoreScales", "userProfiles", "userResources", "users"],
}


def cell(v: Any, t: str) -> str:
    """A REST field's value ``v`` as the CSV cell of a column of conversion ``t``."""
    if v is None:
        return ""
    if t == REF:
        return ref_id(v) or ""
    if t == REFS:
        return ",".join(s for s in (ref_id(x) for x in v) if s)
    if t == LIST:
        return ",".join(str(x) for x in v) if isinstance(v, list) else str(v)
    return str(v)
