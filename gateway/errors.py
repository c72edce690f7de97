"""One exception hierarchy for the whole gateway.

Every surface turns these into its standard's own error shape in exactly one place:
the canonical API into RFC 9457 problem details (``gateway.api.problems``), the
OneRoster router into imsx_StatusInfo, the xAPI router into a 400 with a message,
and so on. Code raises the most specific class; nobody catches and swallows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ErrorDetail:
    """One precise problem in an input: where it is and what is wrong.

    ``location`` names the place the user can find: a file and row, a JSON path,
    a line of an NDJSON file, a query parameter. ``field`` is the field inside it.
    """

    message: str
    location: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.location is not None:
            out["location"] = self.location
        if self.field is not None:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.location, self.field and f'field "{self.field}"') if p)
        return f"{where}: {self.message}" if where else self.message


class TesseraError(Exception):
    """Base of every error the gateway raises on purpose."""

    status = 500
    title = "Internal error"
    type_slug = "internal"

    def __init__(self, detail: str, *, errors: list[ErrorDetail] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[ErrorDetail] = list(errors or [])

    def __str__(self) -> str:
        if not self.errors:
            return self.detail
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        return f"{self.detail}: {shown}{more}"


class ValidationError(TesseraError):
    """Input parsed but breaks the model's or the standard's rules (422 by default)."""

    status = 422
    title = "Invalid input"
    type_slug = "validation"


class MalformedInput(ValidationError):
    """Input that cannot even be parsed: not JSON, not CSV, truncated (400)."""

    status = 400
    title = "Malformed input"
    type_slug = "malformed"


class UnsupportedMediaType(TesseraError):
    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class PayloadTooLarge(TesseraError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class NotFound(TesseraError):
    """The record does not exist *for this tenant*. Also used for other tenants' ids."""

    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(TesseraError):
    """The request contradicts stored state (e.g. rewriting append-only evidence)."""

    status = 409
    title = "Conflict"
    type_slug = "conflict"


class Gone(TesseraError):
    """What was asked for is no longer kept (410): e.g. a change version older than the oldest."""

    status = 410
    title = "Gone"
    type_slug = "gone"


class IntegrityError(ValidationError):
    """A batch references records that exist neither in the batch nor in the store."""

    title = "Broken reference"
    type_slug = "integrity"


class AuthError(TesseraError):
    """Missing, malformed, expired or badly signed credentials (401)."""

    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class ScopeError(TesseraError):
    """Valid credentials that lack the scope the operation needs (403)."""

    status = 403
    title = "Insufficient scope"
    type_slug = "insufficient-scope"

    def __init__(self, detail: str, *, required: list[str] | None = None) -> None:
        super().__init__(detail)
        self.required = list(required or [])


class UpstreamError(TesseraError):
    """An external system Tessera called answered with an error, or with something that is
    not its standard (502). Adapters' provider clients subclass it."""

    status = 502
    title = "Bad gateway"
    type_slug = "bad-gateway"


class ConfigError(TesseraError):
    """The gateway is misconfigured (bad gateway.yaml, unknown adapter, ...)."""

    title = "Configuration error"
    type_slug = "config"


class NotReady(TesseraError):
    """The database is unreachable or not migrated to the current schema (503)."""

    status = 503
    title = "Service not ready"
    type_slug = "not-ready"


@dataclass
class ErrorCollector:
    """Gathers every problem in an input so that an importer can report them all at once."""

    errors: list[ErrorDetail] = field(default_factory=list)
    limit: int = 1000

    def add(self, message: str, *, location: str | None = None, field: str | None = None) -> None:
        if len(self.errors) < self.limit:
            self.errors.append(ErrorDetail(message, location, field))

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self, detail: str, cls: type[ValidationError] = ValidationError) -> None:
        if self.errors:
            raise cls(detail, errors=self.errors)


@dataclass(frozen=True)
class Deviation(ErrorDetail):
    """A departure from the letter of a standard that has exactly one reading, such as
    an enumeration value in another letter case. ``kind`` is a short stable slug
    (``enum-case``, ``file-name-case``, ``duplicate-object``...). Scripts count by it,
    and the import report totals by it."""

    kind: str = "deviation"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **super().as_dict()}


@dataclass
class Deviations:
    """What a tolerant importer normalised, one ``Deviation`` per place, with a count per
    kind. In strict mode (``--strict``, the conformance kits) every deviation is an error
    in ``errors`` instead, worded the same way.

    Usage, at the one place a deviation is recognised::

        if devs.tolerate("enum-case", f"'{v}' is written '{v.lower()}' by the spec",
                         location=loc, field=col):
            v = v.lower()          # tolerant: normalised, and reported
        # strict: the error is recorded; leave the value as it is

    Nothing may be normalised without going through ``tolerate``. What has more than one
    reading (two different objects under one identifier, a malformed date) is never a
    deviation: it is an error in both modes.
    """

    strict: bool = False
    errors: ErrorCollector = field(default_factory=ErrorCollector)
    items: list[Deviation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: the most deviations kept with their place; ``counts`` keeps counting past it
    limit: int = 1000

    def tolerate(self, kind: str, message: str, *, location: str | None = None, field: str | None = None) -> bool:
        """Report one deviation. True: normalise it (tolerant mode). False: strict mode,
        where it was recorded as an error; keep the value as it was sent."""
        if self.strict:
            self.errors.add(message, location=location, field=field)
            return False
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.items) < self.limit:
            self.items.append(Deviation(message, location, field, kind))
        return True

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form in import reports and ``tessera validate --json``."""
        return {"total": self.total, "counts": dict(sorted(self.counts.items())),
                "warnings": [d.as_dict() for d in self.items]}
