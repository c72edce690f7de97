"""The canonical competency-evidence model (DESIGN section 3).

Every record serialises with its ``kind``, so one JSON object (a line of NDJSON, an item
of a batch) is self-describing; ``parse_record`` turns it back into its class and
reports problems with their exact field path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ..errors import ErrorDetail
from .base import CanonicalModel, Identifier, Record, Status, Timestamp, ensure_aware, record_id, utcnow
from .competencies import (
    CASE_IDENTIFIER_KINDS,
    Alignment,
    Competency,
    Framework,
    ProficiencyLevel,
    ProficiencyScale,
    Relation,
    RelationType,
    TargetKind,
)
from .evidence import ActivityRef, Evidence, EvidenceKind, Provenance, Score
from .mastery import (
    Contribution,
    LearningPlan,
    MasteryMethod,
    MasteryRule,
    MasteryState,
    PlanStatus,
    PlanTarget,
    TargetStatus,
)
from .people import Demographics, Org, OrgRole, OrgType, Person, Role, Sex
from .rostering import AcademicSession, Course, Enrollment, Section, SectionType, SessionType

#: Every record class, in dependency order: a record only references kinds before it.
RECORD_CLASSES: tuple[type[Record], ...] = (
    Org,
    AcademicSession,
    Course,
    Section,
    Person,
    Enrollment,
    Framework,
    Competency,
    Relation,
    ProficiencyScale,
    Alignment,
    Evidence,
    MasteryRule,
    MasteryState,
    LearningPlan,
)
RECORD_TYPES: dict[str, type[Record]] = {cls.KIND: cls for cls in RECORD_CLASSES}

# a union built from the list above: pydantic reads it at run time, mypy cannot
AnyRecord = Annotated[Union[tuple(RECORD_CLASSES)], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
_any_record: TypeAdapter[Record] = TypeAdapter(AnyRecord)  # type: ignore[arg-type]


def pydantic_errors(exc: PydanticValidationError, location: str | None = None) -> list[ErrorDetail]:
    """Turn pydantic's errors into ErrorDetails naming the field path, never echoing input values."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = _loc_path(err["loc"])
        out.append(ErrorDetail(err["msg"], location=location, field=path or None))
    return out


def _loc_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in RECORD_TYPES and not parts:
            continue  # the discriminator's own branch name adds nothing for the user
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def parse_record(data: Any, *, location: str | None = None) -> Record:
    """Validate one canonical record (a dict or JSON bytes) into its class.

    Raises ``gateway.errors.ValidationError`` whose details carry ``location`` (the caller's
    name for where the object came from, e.g. ``"line 12"``) and the field path.
    """
    from ..errors import ValidationError

    try:
        if isinstance(data, (bytes, str)):
            return _any_record.validate_json(data)
        return _any_record.validate_python(data)
    except PydanticValidationError as exc:
        raise ValidationError("invalid canonical record", errors=pydantic_errors(exc, location)) from None


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every record class, keyed by kind."""
    return {kind: cls.model_json_schema(mode="validation") for kind, cls in RECORD_TYPES.items()}


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<kind>.schema.json`` for every record kind; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, schema in json_schemas().items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://tessera.dev/schemas/canonical/{kind}.schema.json",
            **schema,
        }
        path = directory / f"{kind}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


__all__ = [
    "CASE_IDENTIFIER_KINDS", "AcademicSession", "ActivityRef", "Alignment", "AnyRecord", "CanonicalModel", "Competency",
    "Contribution", "Course", "Demographics", "Enrollment", "Evidence", "EvidenceKind", "Framework",
    "Identifier", "LearningPlan", "MasteryMethod", "MasteryRule", "MasteryState", "Org", "OrgRole", "OrgType", "Person",
    "ProficiencyLevel", "ProficiencyScale", "Provenance", "RECORD_CLASSES", "RECORD_TYPES", "Record",
    "PlanStatus", "PlanTarget", "Relation", "RelationType", "Role", "Score", "Section", "SectionType", "SessionType", "Sex", "Status",
    "TargetKind", "TargetStatus", "Timestamp", "ensure_aware", "export_schemas", "json_schemas", "parse_record", "pydantic_errors",
    "record_id", "utcnow",
]
