"""What every canonical record shares (DESIGN section 3).

A record is keyed, for idempotent ingest, by ``(tenant, source, native_id)``: the system
it came from and that system's own id for it. Its canonical ``id`` is derived from that
key with uuid5, so an adapter can compute the id of a record it references (an
enrollment's person, say) without a database round trip, and re-ingesting the same
record always lands on the same row.

The kind is part of the uuid5 name as well as the source and native id: standards such
as OneRoster only promise sourcedIds unique per type, so a user and a class may share
one. DESIGN section 3 names "tenant + source system + native id"; adding the kind keeps
that rule and removes the collision.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: Fixed namespace for record ids. Never change it: every stored id derives from it.
RECORD_NAMESPACE = uuid.UUID("6f1c5e0a-7d3b-5b8e-9a43-3c1f2e7d9b10")

TENANT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


_NAMESPACE_BYTES = RECORD_NAMESPACE.bytes
#: RFC 4122 4.3 / 4.1.3: clear the version and variant bits, then set version 5, variant 10
_V5_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V5_SET = (0x5000 << 64) | (0x8000 << 48)
#: read once: an enum member's attribute access is a Python property call (~0.2 us) per id made
_UNKNOWN = uuid.SafeUUID.unknown


def record_id(tenant: str, kind: str, source: str, native_id: str) -> uuid.UUID:
    """The canonical id of the record ``native_id`` of ``kind`` from ``source`` in ``tenant``:
    ``uuid.uuid5(RECORD_NAMESPACE, "tenant\\x1fkind\\x1fsource\\x1fnative_id")``, computed
    without ``uuid.UUID.__init__``'s argument checks (twice as fast; every record of every
    batch and every derived state needs one; tests check it equals ``uuid5``)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{tenant}\x1f{kind}\x1f{source}\x1f{native_id}".encode()).digest()
    # ``uuid_from_int`` written out: the call cost 15 % of this function (a bulk import's ids)
    u = object.__new__(uuid.UUID)
    object.__setattr__(u, "int", (int.from_bytes(digest[:16], "big") & _V5_CLEAR) | _V5_SET)
    object.__setattr__(u, "is_safe", _UNKNOWN)
    return u


def uuid_from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to fit in 128 bits, without the checks."""
    u = object.__new__(uuid.UUID)
    object.__setattr__(u, "int", value)
    object.__setattr__(u, "is_safe", _UNKNOWN)
    return u


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_aware(v: datetime | None) -> datetime | None:
    """Timestamps are always timezone-aware; a naive one is taken as UTC."""
    if v is None:
        return None
    if v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


#: A timezone-aware timestamp (naive input is taken as UTC).
Timestamp = Annotated[datetime, AfterValidator(ensure_aware)]


class Status(str, enum.Enum):
    """Lifecycle of a record; ``tobedeleted`` is a soft delete, as in OneRoster."""

    active = "active"
    tobedeleted = "tobedeleted"


#: class -> its field names (pydantic's ``model_fields`` is slow to reach in a hot loop)
_FIELD_NAMES: dict[type, frozenset[str]] = {}


class CanonicalModel(BaseModel):
    """Base of every canonical value object: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, use_enum_values=False)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """An instance built without validation from values the gateway computed itself,
        for hot loops (a full mastery recompute builds millions of states). EVERY field must
        be given. What ``model_construct`` does, without its per-field default lookups,
        which cost more than the rest of building a state."""
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = frozenset(cls.model_fields)
        missing = names - values.keys()
        if missing:
            raise TypeError(f"{cls.__name__}.trusted needs every field; missing {sorted(missing)}")
        obj = cls.__new__(cls)
        object.__setattr__(obj, "__dict__", values)
        object.__setattr__(obj, "__pydantic_fields_set__", set(values))
        object.__setattr__(obj, "__pydantic_extra__", None)
        object.__setattr__(obj, "__pydantic_private__", None)
        return obj

    @classmethod
    def trusted_dict(cls, values: dict[str, Any]) -> Self:
        """``trusted`` for the hottest loops (a bulk import's million enrollments), taking the
        dict itself, which becomes the instance's own: ``values`` must hold every field, in
        the class's order (``model_fields``), and is NOT checked. ``trusted``'s check and its
        keyword arguments cost as much again as the rest (measured: 2.2 against 1.4 us an
        Enrollment), so a caller builds its dict as a literal and checks its field list
        against ``model_fields`` once, when its module loads."""
        obj = cls.__new__(cls)
        object.__setattr__(obj, "__dict__", values)
        object.__setattr__(obj, "__pydantic_fields_set__", set(values))
        object.__setattr__(obj, "__pydantic_extra__", None)
        object.__setattr__(obj, "__pydantic_private__", None)
        return obj


class Identifier(CanonicalModel):
    """One name a record has in one system, e.g. ``("sis", "oneroster.sourcedId", "u-123")``.

    ``system`` is the connection or system name, ``kind`` says what sort of identifier it
    is (``oneroster.sourcedId``, ``lti.sub``, ``xapi.account``, ``email``, ``case.uri``...),
    ``value`` is the identifier itself. Identity resolution looks records up by these.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=1024)


class Record(CanonicalModel):
    """A canonical record: the fields every aggregate has.

    ``updated_at`` is when the record last changed *in Tessera*; the store sets it when
    it writes a real change, so ``updated_since`` filters and sync watermarks follow the
    gateway's own clock. The source system's own modification time, when it gives one,
    is kept in ``source_updated_at``.
    """

    #: The record kind, e.g. ``"person"``; each aggregate fixes it with a Literal default,
    #: which makes any record JSON self-describing (see ``gateway.model.parse_record``).
    kind: str
    KIND: ClassVar[str] = ""

    id: uuid.UUID | None = None
    tenant: str = Field(pattern=TENANT_PATTERN)
    source: str = Field(min_length=1, max_length=128, description="system the record came from")
    native_id: str = Field(min_length=1, max_length=255, description="the source system's id for it")
    identifiers: list[Identifier] = Field(default_factory=list)
    status: Status = Status.active
    updated_at: Timestamp | None = None
    source_updated_at: Timestamp | None = None
    extensions: dict[str, Any] = Field(
        default_factory=dict,
        description="data the source carried that the canonical model has no field for, kept for round trips",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["kind"].default
        if isinstance(default, str):
            cls.KIND = default

    @model_validator(mode="after")
    def _derive_id(self) -> Record:
        expected = record_id(self.tenant, self.kind, self.source, self.native_id)
        if self.id is None:
            self.id = expected
        elif self.id != expected:
            raise ValueError(
                f"id {self.id} does not match tenant/source/native_id (expected {expected}); "
                "omit id to let Tessera derive it"
            )
        return self

    def ref(self, kind: str, native_id: str, source: str | None = None) -> uuid.UUID:
        """Id of another record of this tenant, by default from the same source."""
        return record_id(self.tenant, kind, source or self.source, native_id)

