"""SQLAlchemy tables: one per canonical record kind, plus the gateway's own.

A record table keeps the whole canonical record as JSON text in ``data`` (what the API
serves, byte for byte) and *promotes* the fields that queries filter or join on to real,
indexed columns. ``content_hash`` (sha256 of the record without its timestamps) is how
an upsert tells a real change from a re-delivery.

A record's key is ``(tenant, source, native_id)``, but no UNIQUE constraint spells it
out: the primary key ``id`` is uuid5 of exactly (tenant, kind, source, native_id)
(``gateway.model.record_id``; the model rejects any other id), and every row of a table
has the same kind, so two rows with the same key would have the same id and the primary
key already refuses them. A second unique index over three strings would double that
check on every insert and be used by no query (identity resolution looks names up in
``identifiers``). Ids are ``UUIDType``: native ``uuid`` on PostgreSQL, 16-byte BLOBs on
SQLite.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from .db import UTCDateTime, UUIDType
from .types import NAMING, BigId

metadata = MetaData(naming_convention=NAMING)

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)


#: Tables whose records a standard's API looks up by native id (migration 0002).
NATIVE_ID_LOOKUP = frozenset({"orgs", "academic_sessions", "courses", "sections", "people", "enrollments"})


def _record_table(name: str, *promoted: Column, indexes: tuple[tuple[str, ...], ...] = ()) -> Table:
    table = Table(
        name,
        metadata,
        Column("id", UUIDType(), primary_key=True),
        Column("tenant", String(63), nullable=False),
        Column("source", String(128), nullable=False),
        Column("native_id", String(255), nullable=False),
        Column("status", String(16), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("content_hash", String(64), nullable=False),
        Column("data", Text(), nullable=False),
        *promoted,
        Index(f"ix_{name}_tenant_updated_at_id", "tenant", "updated_at", "id"),
    )
    if name in NATIVE_ID_LOOKUP:
        # Standards' APIs address records by their own ids (OneRoster /users/{sourcedId}).
        Index(f"ix_{name}_tenant_native_id", "tenant", "native_id", _table=table)
    for cols in indexes:
        Index(f"ix_{name}_{'_'.join(cols)}", *cols, _table=table)
    return table


orgs = _record_table(
    "orgs",
    Column("type", String(32), nullable=False),
    Column("parent_id", UUIDType()),
    indexes=(("tenant", "parent_id"),),
)
academic_sessions = _record_table(
    "academic_sessions",
    Column("type", String(32), nullable=False),
    Column("parent_id", UUIDType()),
    Column("school_year", Integer()),
)
courses = _record_table("courses", Column("org_id", UUIDType()), indexes=(("tenant", "org_id"),))
sections = _record_table(
    "sections",
    Column("course_id", UUIDType()),
    Column("org_id", UUIDType()),
    indexes=(("tenant", "course_id"), ("tenant", "org_id")),
)
people = _record_table("people", Column("primary_role", String(32)), indexes=(("tenant", "primary_role"),))
enrollments = _record_table(
    "enrollments",
    Column("person_id", UUIDType(), nullable=False),
    Column("section_id", UUIDType(), nullable=False),
    Column("role", String(32), nullable=False),
    # (tenant, person_id, section_id): a person's enrollments, and "is this person in this
    # section" matched whole (0005)
    indexes=(("tenant", "person_id", "section_id"), ("tenant", "section_id")),
)
frameworks = _record_table("frameworks", Column("guid", UUIDType()), indexes=(("tenant", "guid"),))
competencies = _record_table(
    "competencies",
    Column("framework_id", UUIDType(), nullable=False),
    Column("guid", UUIDType()),
    Column("code", String(255)),
    indexes=(("tenant", "framework_id"), ("tenant", "guid"), ("tenant", "code")),
)
relations = _record_table(
    "relations",
    Column("type", String(32), nullable=False),
    Column("origin_id", UUIDType()),
    Column("destination_id", UUIDType()),
    indexes=(("tenant", "origin_id"), ("tenant", "destination_id")),
)
proficiency_scales = _record_table("proficiency_scales", Column("framework_id", UUIDType()))
alignments = _record_table(
    "alignments",
    Column("target_system", String(128), nullable=False),
    Column("target_id", String(2048), nullable=False),
    Column("competency_id", UUIDType(), nullable=False),
    indexes=(("tenant", "target_system", "target_id"), ("tenant", "competency_id")),
)
evidence = _record_table(
    "evidence",
    Column("learner_id", UUIDType(), nullable=False),
    Column("competency_id", UUIDType()),
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("voided", Boolean(), nullable=False),
    # what the mastery engine reads, so a full recompute never parses the JSON (0003)
    Column("scaled", Float()),
    Column("level", String(64)),
    Column("evidence_kind", String(32)),
    Column("success", Boolean()),
    Column("superseded_by", UUIDType()),
    indexes=(("tenant", "learner_id", "competency_id"), ("tenant", "competency_id")),
)
mastery_rules = _record_table(
    "mastery_rules", Column("framework_id", UUIDType()), Column("competency_id", UUIDType())
)
mastery_states = _record_table(
    "mastery_states",
    Column("learner_id", UUIDType(), nullable=False),
    Column("competency_id", UUIDType(), nullable=False),
    # what reports group by (0003)
    Column("level", String(64)),
    Column("value", Float()),
    Column("mastered", Boolean()),
    indexes=(("tenant", "learner_id"),),
)
# The distribution report counts active states per (competency, level) for a set of learners:
# an index-only scan of this partial index (retired states stay as tobedeleted rows).
Index(
    "ix_mastery_states_report", "tenant", "competency_id", "level", "learner_id", _table=mastery_states,
    postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'"),
)
learning_plans = _record_table("learning_plans", Column("learner_id", UUIDType(), nullable=False), indexes=(("tenant", "learner_id"),))

#: Record kind -> its table.
RECORD_TABLES: dict[str, Table] = {
    "org": orgs,
    "academic_session": academic_sessions,
    "course": courses,
    "section": sections,
    "person": people,
    "enrollment": enrollments,
    "framework": frameworks,
    "competency": competencies,
    "relation": relations,
    "proficiency_scale": proficiency_scales,
    "alignment": alignments,
    "evidence": evidence,
    "mastery_rule": mastery_rules,
    "mastery_state": mastery_states,
    "learning_plan": learning_plans,
}

identifiers = Table(
    "identifiers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("record_kind", String(32), nullable=False),
    Column("record_id", UUIDType(), nullable=False),
    Column("system", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("value", String(1024), nullable=False),
    Index("ix_identifiers_lookup", "tenant", "system", "kind", "value"),
    Index("ix_identifiers_record_id", "record_id"),
)

#: Append-only: one row per real change to a record. Never updated, never deleted.
changes = Table(
    "changes",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("batch_id", UUIDType(), nullable=False),
    Column("record_kind", String(32), nullable=False),
    Column("record_id", UUIDType(), nullable=False),
    Column("op", String(16), nullable=False),  # created | updated | deleted
    Column("content_hash", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_changes_tenant_seq", "tenant", "seq"),
)

#: The change log's retention horizon: every version up to ``dropped_through`` was dropped
#: (``partitions.drop_before``); a reader asking for one is told the oldest kept (410).
change_log_horizon = Table(
    "change_log_horizon",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),  # always 1
    Column("dropped_through", BigInteger(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)

connections = Table(
    "connections",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("adapter", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("system", String(128), nullable=False),
    Column("base_url", String(2048)),
    Column("auth", Text(), nullable=False, default="{}"),  # references to env vars, never secrets
    Column("options", Text(), nullable=False, default="{}"),
    Column("origin", String(16), nullable=False, server_default="api"),  # api | config (gateway.yaml)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime()),
    UniqueConstraint("tenant", "name"),
)

routes = Table(
    "routes",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(128), nullable=False),
    # pull: source is the remote system, destination null (this Tessera's store);
    # push: source null (any change in the store), destination the remote system
    Column("source_connection_id", UUIDType(), ForeignKey("connections.id")),
    Column("destination_connection_id", UUIDType(), ForeignKey("connections.id")),
    Column("kinds", Text(), nullable=False),  # JSON list of record kinds
    Column("mode", String(8), nullable=False),  # push | pull
    Column("enabled", Boolean(), nullable=False),
    Column("watermark", Text()),  # the route's opaque cursor (pull), advanced after each committed page
    Column("cursor_at", UTCDateTime()),  # when the cursor last moved (cursor age metric)
    Column("orgs", Text(), nullable=False, server_default="[]"),  # JSON list: org filter (sourcedIds), empty = all
    Column("mapping", String(256)),  # a mapping file name under mappings/, or null
    Column("schedule_seconds", Integer()),  # pull interval; null = only on demand
    Column("next_run_at", UTCDateTime()),  # when the scheduler next starts a pull
    Column("options", Text(), nullable=False, server_default="{}"),
    Column("origin", String(16), nullable=False, server_default="api"),  # api | config (gateway.yaml)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime()),
    UniqueConstraint("tenant", "name"),
)

#: Deliveries owed to destinations, written in the same transaction as the change.
#: state: pending -> delivered, or dead (the dead-letter queue: replay sets it pending again).
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("route_id", UUIDType(), ForeignKey("routes.id"), nullable=False),
    Column("record_kind", String(32), nullable=False),
    Column("record_id", UUIDType(), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("state", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime()),  # the claiming worker's lease
    Column("lease_owner", String(64)),  # which worker holds the lease
    Column("last_error", Text()),
    Column("last_status", Integer()),  # the destination's last HTTP status, if any
    Column("last_request", Text()),  # redacted summary of the last request (method, URL, body excerpt)
    Column("last_response", Text()),  # excerpt of the last response (at most 2 KB)
    Column("waiting_on", Text()),  # a dependency the destination did not know yet (409 / unknown reference)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Column("dead_at", UTCDateTime()),
    Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_outbox_route_id_state", "route_id", "state"),
)

#: One execution of a route (DESIGN section 6): a pull, or a drain of its push deliveries.
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("route_id", UUIDType(), ForeignKey("routes.id"), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | manual | change
    Column("engine", String(16), nullable=False),  # embedded | temporal
    Column("status", String(16), nullable=False),  # running | succeeded | failed | partial
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("read", Integer(), nullable=False, server_default="0"),
    Column("written", Integer(), nullable=False, server_default="0"),
    Column("unchanged", Integer(), nullable=False, server_default="0"),
    Column("deleted", Integer(), nullable=False, server_default="0"),
    Column("failed", Integer(), nullable=False, server_default="0"),
    Column("cursor_before", Text()),
    Column("cursor_after", Text()),
    Column("errors", Text(), nullable=False, server_default="[]"),  # JSON list of {message, location}
    Index("ix_sync_runs_tenant_route_id_started_at", "tenant", "route_id", "started_at"),
)

#: Per connection, shared by every worker: the circuit breaker and what health shows.
connection_health = Table(
    "connection_health",
    metadata,
    Column("connection_id", UUIDType(), ForeignKey("connections.id"), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("consecutive_failures", Integer(), nullable=False, server_default="0"),
    Column("open_until", UTCDateTime()),  # the breaker is open (no calls) until then
    Column("last_error", Text()),
    Column("last_success_at", UTCDateTime()),
    Column("last_failure_at", UTCDateTime()),
)

#: A district's data-sharing grant to another tenant (a state agency, a research partner).
grants = Table(
    "grants",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("grantor", String(63), ForeignKey("tenants.id"), nullable=False),  # the district sharing
    Column("grantee", String(63), nullable=False),  # the tenant reading (it need not exist yet)
    Column("purpose", Text(), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("scopes", Text(), nullable=False),  # JSON list: what the grantee may do under it
    Column("kinds", Text(), nullable=False),  # JSON list of record kinds it covers
    Column("deidentified", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),  # the client (or "cli")
    Column("revoked_at", UTCDateTime()),
    Column("revoked_by", String(64)),
    Index("ix_grants_grantee", "grantee"),
    Index("ix_grants_grantor", "grantor"),
)

#: Every read under a grant: who, what, when, how many records. Append-only.
grant_access_log = Table(
    "grant_access_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("grant_id", UUIDType(), ForeignKey("grants.id"), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("action", String(32), nullable=False),  # changes | export
    Column("detail", Text(), nullable=False),  # e.g. "kinds=person,evidence since=120"
    Column("records", Integer(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_grant_access_log_grant_id_at", "grant_id", "at"),
)

#: Bulk exports asked through the API (``/v1/exports``), run in the background.
export_jobs = Table(
    "export_jobs",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), nullable=False),  # who asked
    Column("client_id", String(64), nullable=False),
    Column("grant_id", UUIDType(), ForeignKey("grants.id")),
    Column("source_tenant", String(63)),  # the tenant exported (own, or the grantor)
    Column("format", String(16), nullable=False),
    Column("kinds", Text(), nullable=False),
    Column("since", BigInteger()),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("manifest", Text()),
    Column("error", Text()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    # 0012: one active job per grant (or tenant) in the whole database, whatever the process
    Column("lock_key", String(100)),  # grant:<id> | tenant:<name>
    Column("lease_until", UTCDateTime()),  # renewed by the process running the job
    Index("ix_export_jobs_tenant_created_at", "tenant", "created_at"),
    Index("ux_export_jobs_active_lock_key", "lock_key", unique=True,
          postgresql_where=text("status IN ('queued', 'running')"), sqlite_where=text("status IN ('queued', 'running')")),
)

#: Each import (a file, a package or a provider read by ``tessera import ...``): its counts
#: and its errors (file, row, field), kept whether it was applied or refused (0013), so that
#: people see them later (the console's integrator pages); recorded in a transaction of its
#: own, after the import's, so a refused import still changes no record.
import_runs = Table(
    "import_runs",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("source", String(64), nullable=False),  # the importer: oneroster.csv, oneroster.rest, case, ndjson...
    Column("what", Text(), nullable=False),  # the file, folder or URL (never a credential)
    Column("via", String(16), nullable=False),  # cli | api
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("created", Integer(), nullable=False, server_default="0"),
    Column("updated", Integer(), nullable=False, server_default="0"),
    Column("unchanged", Integer(), nullable=False, server_default="0"),
    Column("deviations", Integer(), nullable=False, server_default="0"),  # normalised on the way in (tolerant)
    Column("message", Text()),  # why it failed
    Column("errors", Text(), nullable=False, server_default="[]"),  # JSON list of {message, location, field}
    Index("ix_import_runs_tenant_started_at", "tenant", "started_at"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("secret_hash", String(256), nullable=False),
    Column("scopes", Text(), nullable=False),  # space-separated
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Column("person_id", UUIDType()),  # 0003: a client acting for one person
)

#: OAuth 1.0a consumers (``gateway.auth.consumers``): keys shared with a peer that signs its
#: requests (OneRoster 1.1 REST, LTI 1.1 launches and outcomes). ``purpose`` is what the key
#: is for, named by the adapter that made it ("oneroster", "lti11.tool", "lti11.consumer"): a
#: key authenticates only where its purpose is asked for. HMAC needs the secret itself, so it
#: is sealed (``gateway.auth.sealed``), not hashed. ``attributes``: a JSON object of what the
#: adapter keeps about the consumer (LTI 1.1: the identifier system of its LIS sourcedids).
oauth1_consumers = Table(
    "oauth1_consumers",
    metadata,
    Column("consumer_key", String(255), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id"), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("secret_sealed", Text(), nullable=False),
    Column("scopes", Text(), nullable=False),  # space-separated; empty where the adapter has no scopes
    Column("attributes", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Index("ix_oauth1_consumers_tenant_purpose", "tenant", "purpose"),
)

#: RFC 5849 3.3: (consumer key, nonce, timestamp) is single use. A row lives until its
#: timestamp would be refused anyway (``expires_at``); expired rows go as new nonces arrive.
oauth1_nonces = Table(
    "oauth1_nonces",
    metadata,
    Column("consumer_key", String(255), primary_key=True),
    Column("nonce", String(255), primary_key=True),
    Column("timestamp", BigInteger(), primary_key=True, autoincrement=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_oauth1_nonces_expires_at", "expires_at"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_pem", Text(), nullable=False),
    Column("public_jwk", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("retired_at", UTCDateTime()),  # null while it is the current signing key
    Column("verify_until", UTCDateTime()),  # after this, tokens it signed are all expired
)
