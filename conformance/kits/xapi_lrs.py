"""The ``xapi-lrs`` kit: an xAPI 1.0.3 / 2.0 Learning Record Store, checked over HTTP as the
ADL LRS test suite does (and citing its requirement ids, ``XAPI-00123``, where a check
enforces the same requirement).

``tessera conformance run xapi-lrs --base-url https://lrs.example/xapi --basic KEY:SECRET_ENV``

The checks live in four modules, imported here for their registrations on ``KIT``:
``xapi_lrs_statements`` (validation, acceptance, storage), ``xapi_lrs_queries`` (GET
/statements, voiding), ``xapi_lrs_documents`` (State, Activity Profile, Agent Profile) and
``xapi_lrs_protocol`` (headers, versions, auth, errors, About, Activities, Agents,
attachments, signed statements). ``xapi_lrs_common`` has the client and the test data.
"""

from __future__ import annotations

from . import xapi_lrs_documents, xapi_lrs_protocol, xapi_lrs_queries, xapi_lrs_statements  # noqa: F401 - they register the checks
from .xapi_lrs_common import KIT

__all__ = ["KIT"]
