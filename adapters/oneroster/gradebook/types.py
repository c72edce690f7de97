"""OneRoster gradebook and resources types: their fields, REST collections, and what they
reference (OneRoster 1.2 Gradebook Service Information Model section 4, Resources Service
section 4; 1.1 Gradebook section 4).

Shared by every other module of the package, and by the REST providers (``fields_of``
gives the query grammar its field names).
"""

from __future__ import annotations

#: field kinds: s string, num number, dt date/datetime, bool "true"/"false", list string list,
#: ref:<type> GUIDRef, los line-item objectives, lor result objectives, ssv score scale values,
#: enum:<name> a vocabulary below
Field = tuple[str, str, bool, bool]  # (name, kind, required in 1.1, required in 1.2)

SCORE_STATUS = ("exempt", "fully graded", "not submitted", "partially graded", "submitted")
#: the REST binding's OpenAPI spells them camelCase; both are accepted and kept as given
SCORE_STATUS_ALT = ("fullyGraded", "notSubmitted", "partiallyGraded")
IMPORTANCE = ("primary", "secondary")
#: enum name -> (accepted tokens, tokens named in an error)
ENUMS = {"scoreStatus": (SCORE_STATUS + SCORE_STATUS_ALT, SCORE_STATUS), "importance": (IMPORTANCE, IMPORTANCE)}

_RESULT_FLAGS: list[Field] = [("inProgress", "bool", False, False), ("incomplete", "bool", False, False),
                              ("late", "bool", False, False), ("missing", "bool", False, False)]

FIELDS: dict[str, list[Field]] = {
    "category": [("title", "s", True, True), ("weight", "num", False, False)],
    "lineItem": [
        ("title", "s", True, True), ("description", "s", False, False), ("assignDate", "dt", True, True),
        ("dueDate", "dt", True, True), ("class", "ref:class", True, True), ("school", "ref:school", False, False),
        ("category", "ref:category", True, True), ("gradingPeriod", "ref:academicSession", True, False),
        ("academicSession", "ref:academicSession", False, False), ("scoreScale", "ref:scoreScale", False, False),
        ("resultValueMin", "num", False, False), ("resultValueMax", "num", False, False),
        ("learningObjectiveSet", "los", False, False),
    ],
    "result": [
        ("lineItem", "ref:lineItem", True, True), ("student", "ref:user", True, True), ("class", "ref:class", False, False),
        ("scoreScale", "ref:scoreScale", False, False), ("scoreStatus", "enum:scoreStatus", True, True),
        ("score", "num", True, False), ("textScore", "s", False, False), ("scoreDate", "dt", True, True),
        ("comment", "s", False, False), ("learningObjectiveSet", "lor", False, False), *_RESULT_FLAGS,
    ],
    "scoreScale": [
        ("title", "s", True, True), ("type", "s", True, True), ("course", "ref:course", False, False),
        ("class", "ref:class", True, True), ("scoreScaleValue", "ssv", True, True),
    ],
    "assessmentLineItem": [
        ("title", "s", True, True), ("description", "s", False, False), ("class", "ref:class", False, False),
        ("parentAssessmentLineItem", "ref:assessmentLineItem", False, False), ("scoreScale", "ref:scoreScale", False, False),
        ("resultValueMin", "num", False, False), ("resultValueMax", "num", False, False),
        ("learningObjectiveSet", "los", False, False),
    ],
    "assessmentResult": [
        ("assessmentLineItem", "ref:assessmentLineItem", True, True), ("student", "ref:user", True, True),
        ("score", "num", False, False), ("textScore", "s", False, False), ("scoreDate", "dt", True, True),
        ("scoreScale", "ref:scoreScale", False, False), ("scorePercentile", "num", False, False),
        ("scoreStatus", "enum:scoreStatus", True, True), ("comment", "s", False, False),
        ("learningObjectiveSet", "lor", False, False), *_RESULT_FLAGS,
    ],
    "resource": [
        ("title", "s", False, False), ("roles", "list", False, False), ("importance", "enum:importance", False, False),
        ("vendorResourceId", "s", True, True), ("vendorId", "s", False, False), ("applicationId", "s", False, False),
    ],
    "classResource": [("title", "s", False, False), ("class", "ref:class", True, True), ("resource", "ref:resource", True, True)],
    "courseResource": [("title", "s", False, False), ("course", "ref:course", True, True), ("resource", "ref:resource", True, True)],
    "userResource": [("title", "s", False, False), ("user", "ref:user", True, True), ("resource", "ref:resource", True, True)],
}
#: types OneRoster 1.1 does not define
ONLY_V12 = frozenset({"scoreScale", "assessmentLineItem", "assessmentResult", "userResource"})
#: fields of 1.2 types that 1.1 does not have (left out of 1.1 answers)
V12_FIELDS: dict[str, frozenset[str]] = {
    "category": frozenset({"weight"}),
    "lineItem": frozenset({"school", "academicSession", "scoreScale", "learningObjectiveSet"}),
    "result": frozenset({"class", "scoreScale", "textScore", "learningObjectiveSet", "inProgress", "incomplete", "late", "missing"}),
}
#: type -> REST collection (path segment and list envelope)
COLLECTIONS = {
    "category": "categories", "lineItem": "lineItems", "result": "results", "scoreScale": "scoreScales",
    "assessmentLineItem": "assessmentLineItems", "assessmentResult": "assessmentResults", "resource": "resources",
    "classResource": "classResources", "courseResource": "courseResources", "userResource": "userResources",
}
TYPE_OF_COLLECTION = {v: k for k, v in COLLECTIONS.items()}
#: GUIDRef target -> canonical kind (rostering objects live in the record tables)
ROSTER_REFS = {"class": "section", "user": "person", "course": "course", "school": "org", "academicSession": "academic_session"}
#: GUIDRef ``type`` written out
GUID_TYPE = {"school": "org", "user": "user"}
#: the promoted columns of each type: column -> field whose sourcedId it holds
PROMOTED: dict[str, dict[str, str]] = {
    "lineItem": {"class_sid": "class", "school_sid": "school"},
    "result": {"line_item_sid": "lineItem", "user_sid": "student", "class_sid": "class"},
    "scoreScale": {"class_sid": "class", "course_sid": "course"},
    "assessmentLineItem": {"class_sid": "class"},
    "assessmentResult": {"line_item_sid": "assessmentLineItem", "user_sid": "student"},
    "classResource": {"class_sid": "class", "resource_sid": "resource"},
    "courseResource": {"course_sid": "course", "resource_sid": "resource"},
    "userResource": {"user_sid": "user", "resource_sid": "resource"},
}
LINE_ITEM_OF = {"result": "lineItem", "assessmentResult": "assessmentLineItem"}
RESULT_TYPES = tuple(LINE_ITEM_OF)
LINE_ITEM_TYPES = tuple(LINE_ITEM_OF.values())
#: activity / alignment target system of line items: sourcedIds are unique per tenant here
ACTIVITY_SYSTEM = "oneroster"


def fields_of(obj_type: str) -> frozenset[str]:
    """Every field name of a type, for the query grammar (filter / sort / fields)."""
    return frozenset(("sourcedId", "status", "dateLastModified", "metadata", *(f[0] for f in FIELDS[obj_type])))
