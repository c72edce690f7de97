"""Kit ``oneroster-rostering-1.2``: a OneRoster 1.2 Rostering Service provider (REST/JSON binding).

The checks read only: every collection and single-object endpoint, every nested path, the
query parameters (pagination with ``limit``/``offset`` edge cases, ``X-Total-Count`` and
``Link``; ``sort``/``orderBy``; the filter grammar ``= != > >= < <= ~`` with ``AND``/``OR``
and quoting; ``fields``), error payloads (imsx_StatusInfo and its code minors), auth (401
without a token, 403 for a token without the rostering scopes, the 1.2 scope URIs) and
``dateLastModified`` deltas. Ids are discovered from the list endpoints: the kit needs no
particular data, only some (a check whose collection is empty is skipped, saying so).

``--option root=/ims/oneroster/rostering/v1p2`` is the service root under the base URL.

The checks live in two modules, imported here for their registrations on ``KIT`` (in this
order, so the ids read in order): ``oneroster_rostering_paths`` (collections, nested paths,
pagination) and ``oneroster_rostering_queries`` (sorting, filtering, fields, errors, auth,
deltas, the data model).

Requirements name the section of the OneRoster 1.2 Rostering Service REST/JSON binding
("REST binding") or of the Rostering information model ("Info model") they enforce.
"""

from __future__ import annotations

from . import oneroster_rostering_queries  # noqa: F401 - registers the rest of the checks, after those of oneroster_rostering_paths
from .oneroster_rostering_paths import KIT

__all__ = ["KIT"]
