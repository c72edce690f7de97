"""imsx_StatusInfo: how the OneRoster REST bindings answer a failure.

OneRoster 1.2 Rostering REST/JSON binding (and the 1.1 binding before it), "Status codes"
and the imsx_StatusInfo data model: a failure is an HTTP 4xx/5xx whose body is ONE
``imsx_StatusInfo`` object, written out in JSON with these members (case as in the JSON
binding; 1.1 and 1.2 spell them the same way, only the list of codeMinor values grew)::

    {"imsx_codeMajor": "failure",                  # success | processing | failure | unsupported
     "imsx_severity": "error",                     # status | warning | error
     "imsx_description": "human readable text",
     "imsx_CodeMinor": {"imsx_codeMinorField": [   # capital C in imsx_CodeMinor, lower c inside
         {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": "unknownobject"}]}}

The codeMinor vocabulary of the 1.2 rostering binding (its OpenAPI file, imsx_CodeMinorField
value enumeration) is exactly: fullsuccess, invalid_filter_field, invalid_selection_field,
invaliddata, unauthorisedrequest, forbidden, server_busy, unknownobject,
internal_server_error. There is NO invalid_sort_field in OneRoster (CASE 1.0 has one): an
unknown ``sort`` field is 400 invaliddata, its description naming the field, so a strict
consumer validating against the binding's schema still accepts the payload.

Spec choice: the binding says an unknown ``fields`` member MAY be ignored with a warning;
Tessera answers 400 invalid_selection_field instead, so a typo never silently loses data.

The exceptions below are the ones ``query`` raises; each maps to exactly one codeMinor
(``status_info``), and ``render_status_info`` is registered once for every path under
``/ims/oneroster/`` (``register``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from gateway.api.problems import register_error_shape
from gateway.errors import (
    AuthError,
    NotFound,
    ScopeError,
    TesseraError,
    ValidationError,
)

PREFIX = "/ims/oneroster/"


class InvalidData(ValidationError):
    """400 invaliddata: a query parameter that is not what the binding allows (limit, offset, orderBy)."""

    status = 400
    title = "Invalid data"
    type_slug = "oneroster-invaliddata"
    code_minor = "invaliddata"


class InvalidFilterField(InvalidData):
    """400 invalid_filter_field: ``filter`` names a field the type does not have, or cannot be parsed."""

    code_minor = "invalid_filter_field"


class FilterParseError(InvalidFilterField):
    """A ``filter`` that is not ``field<predicate>'value'`` clauses joined by one logical
    operator; ``position`` is the 0-based character offset where parsing stopped."""

    def __init__(self, message: str, position: int, text: str) -> None:
        self.position = position
        self.text = text
        super().__init__(f"invalid filter at position {position}: {message} (filter={text!r})")


class InvalidSelectionField(InvalidData):
    """400 invalid_selection_field: ``fields`` names a field the type does not have."""

    code_minor = "invalid_selection_field"


class InvalidSortField(InvalidData):
    """400 invaliddata (OneRoster has no invalid_sort_field): ``sort`` names a field the type does not have."""


class UnknownObject(NotFound):
    """404 unknownobject: no object of that type with that sourcedId (in the caller's tenant)."""

    code_minor = "unknownobject"


def code_minor(exc: TesseraError) -> tuple[int, str]:
    """(HTTP status, codeMinor value) for an error."""
    minor = getattr(exc, "code_minor", None)
    if minor:
        return exc.status, minor
    if isinstance(exc, AuthError):
        return 401, "unauthorisedrequest"
    if isinstance(exc, ScopeError):
        return 403, "forbidden"
    if isinstance(exc, NotFound):
        return 404, "unknownobject"
    if isinstance(exc, ValidationError):
        return 400, "invaliddata"
    by_status = {401: "unauthorisedrequest", 403: "forbidden", 404: "unknownobject", 429: "server_busy"}
    if exc.status in by_status:  # e.g. an unknown path under /ims/oneroster/ is 404 unknownobject
        return exc.status, by_status[exc.status]
    return exc.status, "invaliddata" if 400 <= exc.status < 500 else "internal_server_error"


def status_info(exc: TesseraError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the imsx_StatusInfo JSON object) for an error."""
    status, minor = code_minor(exc)
    description = exc.detail
    if exc.errors:
        description += ": " + "; ".join(str(e) for e in exc.errors[:20])
    return status, {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}]},
    }


_NOT_QDTEXT = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def render_status_info(request: Request, exc: TesseraError) -> Response:
    status, body = status_info(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera", error="invalid_token", error_description="{_NOT_QDTEXT.sub("", exc.detail)}"'
    elif isinstance(exc, ScopeError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera", error="insufficient_scope", scope="{_NOT_QDTEXT.sub("", " ".join(exc.required))}"'
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers or None)


_registered = False


def register() -> None:
    """Render every error under /ims/oneroster/ (1.1 and 1.2, all services) as imsx_StatusInfo; idempotent."""
    global _registered
    if not _registered:
        register_error_shape(PREFIX, render_status_info)
        _registered = True


__all__ = [
    "FilterParseError", "InvalidData", "InvalidFilterField", "InvalidSelectionField", "InvalidSortField", "UnknownObject",
    "code_minor", "register", "render_status_info", "status_info",
]
