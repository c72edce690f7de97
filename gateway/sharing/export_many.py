"""A recipient's export under many grants at once: every granting district's records in ONE
read of each kind's table, not one read per district.

**Why.** Every tenant's records share one table. Where districts write at the same time
(a live state) each page of the table holds rows of many districts, so an export of one
district reads about every page, and a state agency pulling its N districts one export at a
time reads the whole table N times (``docs/scaling.md``). Here a kind is read by one query,
``tenant = ANY(the granting districts)``, streamed through one server-side cursor, and its
rows are split by tenant into per-district buffers and files.

**Layout.** ``OUT/<tenant>/<kind>.<ext>`` for each district (each file the same columns as a
single-grant export of that district under its grant: its own de-identification, or none),
and one ``OUT/manifest.json`` (``ManyManifest``): the recipient, every source (tenant, grant,
de-identified, kinds), the ONE change version every file is consistent with (one REPEATABLE
READ snapshot for all), and each file with its tenant and grant.

**Memory.** Rows wait in per-district buffers until one holds ``BATCH_ROWS`` (then it is
converted and written as a row group), and the buffers together hold at most
``BUFFER_ROWS``: over that the largest is written out, so memory stays bounded whatever the
number of districts (at the cost of smaller row groups when very many districts' rows are
interleaved). Parquet files share one writing thread (``export.WriteLane``). The districts'
de-identification caches (learners' pseudonyms and state ids) hold ``CACHED_MAX`` learners
in all: past that the largest other than the one in use is emptied.

**Plan.** With enable_seqscan off (``export_reads.READ_SETTINGS``) the tenants' index picks
their pages; where the districts asked make up at least ``SEQSCAN_FROM`` of the table (by
the planner's statistics) a sequential scan is allowed for that kind's query: it reads every
page once, as the bitmap would, without reading the index too.

**Failure** (a revoked or expired grant seen by ``check`` before each batch, a full disk,
anything): every file is removed, the district folders too, and the error raised.

On SQLite (small data) each district is read in turn, in the one snapshot, with the
single-grant code (``export._export_file``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ..errors import NotFound
from ..gc_pause import paused_gc
from ..model import RECORD_TYPES
from ..store import Store
from ..store.changefeed import newest_safe
from . import columns as columnar
from . import export_reads as reads
from .columns import columnize_with, columns_of, prefetched
from .deidentify import CACHE_MAX, Deidentifier, Pseudonymizer, StateIds
from .export import (
    SCHEMA_VERSION,
    WRITERS,
    ExportFailed,
    ExportFile,
    WriteLane,
    _export_file,
    _helper_pays,
    _sha256,
    _Writer,
    export_workers,
    validate,
    write_manifest,
)
from .export_decode import LearnedDecoder
from .export_reads import snapshot
from .grants import Grant, GrantStore
from .pseudonym_helper import PseudonymHelper

#: the rows all districts' buffers may hold together before the largest is written out
BUFFER_ROWS = 4 * reads.BATCH_ROWS
#: the learners all districts' de-identification caches may hold together (pseudonyms, state
#: ids) before the largest other than the one in use is emptied: with hundreds of districts
#: their caches would otherwise hold every learner of the state at once
CACHED_MAX = 2 * CACHE_MAX
#: the share of a table from which the districts' query may scan it sequentially
SEQSCAN_FROM = 0.5


@dataclass(frozen=True)
class Source:
    """One district of a multi-grant export: its tenant, the grant it is read under, that
    grant's de-identifier (None: identified) and the kinds the grant covers."""

    tenant: str
    grant_id: str | None
    deidentifier: Deidentifier | None
    kinds: frozenset[str]


@dataclass
class SourceFile(ExportFile):
    tenant: str = ""
    grant: str | None = None


@dataclass
class ManyManifest:
    schema_version: str
    format: str
    recipient: str
    kinds: list[str]
    since: int | None
    consistent_with: int
    created_at: str
    sources: list[dict[str, Any]]
    finished_at: str = ""
    files: list[SourceFile] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def export_many(store: Store, out_dir: Path, *, recipient: str, sources: Sequence[Source], kinds: Sequence[str], fmt: str,
                since: int | None = None, check: Callable[[], None] | None = None,
                progress: Callable[[str, int], None] | None = None, buffer_rows: int | None = None,
                stats: dict[str, float] | None = None) -> ManyManifest:
    """Export every source's records of ``kinds`` (each source only the kinds its grant
    covers) and return the manifest (also ``out_dir/manifest.json``). ``check`` runs before
    each batch read, ``progress(kind, rows)`` after each buffer written. ``stats`` receives
    ``peak_buffered`` (the most rows the buffers held at once), ``flushes`` (buffers written
    out before the end), ``peak_cached`` (the most learners the de-identification caches held
    at once) and ``forgotten`` (caches emptied to stay under ``CACHED_MAX``)."""
    kinds = validate(fmt, kinds)
    tenants = [s.tenant for s in sources]
    if not sources or len(set(tenants)) != len(tenants):
        raise ExportFailed("a multi-grant export needs at least one grant and at most one grant per district")
    if {"manifest.json", "manifest.json.tmp"} & set(tenants):  # a district's folder where the manifest goes
        raise ExportFailed("a district named manifest.json cannot be exported with others; export it alone")
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "manifest.json").exists():
        raise ExportFailed(f"{out_dir} already holds an export (manifest.json); choose an empty folder")
    with store.engine.connect() as conn:
        until = newest_safe(conn)
    manifest = ManyManifest(SCHEMA_VERSION, fmt, recipient, list(kinds), since, until, datetime.now(UTC).isoformat(),
                            [{"tenant": s.tenant, "grant": s.grant_id, "deidentified": s.deidentifier is not None,
                              "kinds": [k for k in kinds if k in s.kinds]} for s in sources])
    written: list[Path] = []
    folders = [out_dir / s.tenant for s in sources]
    postgres = store.engine.dialect.name == "postgresql"
    counters = {"peak_buffered": 0.0, "flushes": 0.0, "peak_cached": 0.0, "forgotten": 0.0}
    from .export_parts import _Parts

    parts = _Parts(store.engine.url.render_as_string(hide_password=False), None, export_workers() if postgres else 0)
    try:
        for folder in folders:
            folder.mkdir(exist_ok=True)
        with snapshot(store) as conn:
            for kind in kinds:
                mine = [s for s in sources if kind in s.kinds]
                if not mine:
                    continue
                groups = _groups(conn, mine, kind, since, until, parts.workers) if postgres else []
                if len(groups) >= 2:
                    files = _run_groups(parts, conn, mine, groups, kind, since, until, fmt, out_dir, written, check, progress,
                                        buffer_rows or BUFFER_ROWS, counters)
                elif postgres:
                    files = _read_split(conn.connection.dbapi_connection, mine, kind, since, until, fmt, out_dir, written,
                                        check, progress, buffer_rows or BUFFER_ROWS, counters)
                else:
                    files = []
                    for s in mine:
                        path = out_dir / s.tenant / f"{kind}.{WRITERS[fmt][1]}"
                        written.append(path)
                        made = _export_file(conn, s.tenant, kind, since, until, columns_of(kind, deidentified=s.deidentifier is not None),
                                            fmt, path, s.deidentifier, check, progress)
                        files.append(_described(made, s, path, out_dir))
                        _bound_caches(sources, s, counters)
                manifest.files += files
        write_manifest(out_dir, manifest, written)
    except BaseException:
        parts.close()  # its processes stopped (at their next batch) before their files are removed
        for p in written:
            p.unlink(missing_ok=True)
        for folder in folders:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    finally:
        parts.close()
        if stats is not None:
            stats.update(counters)
            stats.update(parts.stats)
    return manifest


def _described(made: ExportFile, source: Source, path: Path, out_dir: Path) -> SourceFile:
    return SourceFile(path.relative_to(out_dir).as_posix(), made.kind, made.rows, made.bytes, made.sha256,
                      tenant=source.tenant, grant=source.grant_id)


class _Sink:
    """One district's file of one kind: its buffer of stored texts and its writer. Under a
    de-identified grant a buffer of at least ``HELPER_FROM`` records has its record ids'
    pseudonyms made by ``helper`` (``pseudonym_helper``: its recipient's process, shared by
    the districts) while the writer converts the other columns, as a single export does."""

    def __init__(self, source: Source, kind: str, fmt: str, path: Path, lane: WriteLane) -> None:
        self.source, self.kind, self.fmt, self.path = source, kind, fmt, path
        self.cols = columns_of(kind, deidentified=source.deidentifier is not None)
        self.writer: _Writer = WRITERS[fmt][0](path, self.cols, lane)
        self.buffer: list[Any] = []
        self.helps = source.deidentifier is not None and columnar.helped(kind, self.cols)
        self.helper: PseudonymHelper | None = None
        deidentified = source.deidentifier is not None
        self.decode = LearnedDecoder(kind, self.cols, deidentified) if fmt != "ndjson" or deidentified else None

    def flush(self, progress: Callable[[str, int], None] | None) -> int:
        raws, self.buffer = self.buffer, []
        if raws:
            helper = self.helper if len(raws) >= columnar.HELPER_FROM else None
            self.writer.write(columnize_with(self.decode, self.kind, self.cols, raws, self.source.deidentifier,
                                             need_columns=self.fmt != "ndjson", helper=helper))
            if progress is not None:
                progress(self.kind, len(raws))
        return len(raws)


def _bound_caches(sources: Sequence[Source], using: Source, counters: dict[str, float]) -> None:
    """Keep the de-identification caches of all districts under ``CACHED_MAX`` learners in
    all: empty the largest (other than the district just written) until they are."""
    deids = [s.deidentifier for s in sources if s.deidentifier is not None]
    total = sum(d.cached() for d in deids)
    counters["peak_cached"] = max(counters["peak_cached"], total)
    while total > CACHED_MAX:
        others = [d for d in deids if d is not using.deidentifier and d.cached()]
        if not others:
            return
        largest = max(others, key=lambda d: d.cached())
        total -= largest.cached()
        largest.forget()
        counters["forgotten"] += 1


def _helpers(sinks: Sequence[_Sink], *, in_part: bool = False) -> list[PseudonymHelper]:
    """One pseudonym helper process per recipient key (the sources of one recipient share
    their ``Pseudonymizer``: ``sources_of``) for the sinks it serves, where one pays
    (``export._helper_pays``); in a part's process (``in_part``), or where no process can be
    had, the same work done in this process (``pseudonym_helper.InProcessPseudonyms``)."""
    made: dict[int, PseudonymHelper] = {}
    process = _helper_pays() and not in_part
    for sink in sinks:
        deid = sink.source.deidentifier
        if not sink.helps or deid is None:
            continue
        if id(deid.pseudonyms) not in made:
            try:
                if not process:
                    raise OSError("no helper process: the pseudonyms are made here")
                made[id(deid.pseudonyms)] = deid.pseudonyms.helper()
            except OSError:  # none wanted or none to be had: made here (``pseudonym_helper.InProcessPseudonyms``)
                made[id(deid.pseudonyms)] = deid.pseudonyms.in_process()
                process = False
        sink.helper = made[id(deid.pseudonyms)]
    return list(made.values())


_tenant_of, _text_of = itemgetter(0), itemgetter(1)


def _read_split(dbapi: Any, sources: list[Source], kind: str, since: int | None, until: int, fmt: str, out_dir: Path,
                written: list[Path], check: Callable[[], None] | None, progress: Callable[[str, int], None] | None,
                cap: int, counters: dict[str, float], *, in_part: bool = False) -> list[SourceFile]:
    """One kind of every source in one query (PostgreSQL), rows split by tenant into the
    sources' buffers and files; the buffers' total held under ``cap`` rows. ``in_part``: in
    a part's process (``_run_groups``), which starts no pseudonym helper and never scans the
    whole table (each part reads its own districts' pages through the tenants' index)."""
    lane = WriteLane()
    sinks: dict[bytes, _Sink] = {}
    helpers: list[PseudonymHelper] = []
    try:
        for s in sources:
            path = out_dir / s.tenant / f"{kind}.{WRITERS[fmt][1]}"
            written.append(path)
            sinks[s.tenant.encode()] = _Sink(s, kind, fmt, path, lane)
        helpers = _helpers(list(sinks.values()), in_part=in_part)
        tenants = [s.tenant for s in sources]
        seqscan = not in_part and reads.tenant_share(dbapi, kind, tenants) >= SEQSCAN_FROM
        if seqscan:  # the districts are most of the table: read it once, in order, without the index
            dbapi.execute("SET LOCAL enable_seqscan = on")
        buffered, full = 0, reads.BATCH_ROWS
        with paused_gc():
            for rows in prefetched(reads.read_many_batches(dbapi, tenants, kind, since, until)):
                if check is not None:
                    check()
                first = rows[0][0]
                if rows[-1][0] == first and list(map(_tenant_of, rows)).count(first) == len(rows):
                    sinks[first].buffer.extend(map(_text_of, rows))  # one district's rows (they sit together): in C
                else:
                    for tenant, raw in rows:
                        sinks[tenant].buffer.append(raw)
                buffered += len(rows)
                counters["peak_buffered"] = max(counters["peak_buffered"], buffered)
                for sink in sinks.values():
                    if len(sink.buffer) >= full:
                        buffered -= sink.flush(progress)
                        counters["flushes"] += 1
                        _bound_caches(sources, sink.source, counters)
                while buffered > cap:
                    largest = max(sinks.values(), key=lambda k: len(k.buffer))
                    buffered -= largest.flush(progress)
                    counters["flushes"] += 1
                    _bound_caches(sources, largest.source, counters)
            for sink in sinks.values():
                sink.flush(progress)
                _bound_caches(sources, sink.source, counters)
        if seqscan:  # the cursor is closed: the export's later queries as before
            dbapi.execute("SET LOCAL enable_seqscan = off")
    finally:
        try:
            for sink in sinks.values():
                sink.writer.close()
        finally:
            lane.close()
            for helper in helpers:
                helper.close()
    return [SourceFile(sink.path.relative_to(out_dir).as_posix(), kind, sink.writer.rows, sink.path.stat().st_size,
                       _sha256(sink.path), tenant=sink.source.tenant, grant=sink.source.grant_id) for sink in sinks.values()]


# --- districts in part processes (PostgreSQL) ---------------------------------------------------------

def _groups(conn: Any, sources: list[Source], kind: str, since: int | None, until: int, workers: int) -> list[list[Source]]:
    """The sources of one kind cut into up to ``workers`` groups of about as many rows each
    (by the planner's statistics of each district's share; in turn where none are gathered),
    each group exported by a part's process; none (one process) for fewer than two workers or
    districts, or fewer than ``2 * BATCH_ROWS`` rows in all."""
    if workers < 2 or len(sources) < 2:
        return []
    some = reads.many_query([s.tenant for s in sources], kind, since, until).limit(2 * reads.BATCH_ROWS).subquery()
    if conn.scalar(select(func.count()).select_from(some)) < 2 * reads.BATCH_ROWS:
        return []
    dbapi = conn.connection.dbapi_connection
    share = {s.tenant: reads.tenant_share(dbapi, kind, [s.tenant]) for s in sources}
    groups: list[list[Source]] = [[] for _ in range(min(workers, len(sources)))]
    weight = [0.0] * len(groups)
    for s in sorted(sources, key=lambda s: -share[s.tenant]):  # the largest first, each to the lightest group
        k = weight.index(min(weight))
        groups[k].append(s)
        weight[k] += share[s.tenant] or 1.0 / len(sources)
    return [g for g in groups if g]


def _run_groups(parts: Any, conn: Any, sources: list[Source], groups: list[list[Source]], kind: str, since: int | None, until: int, fmt: str,
                out_dir: Path, written: list[Path], check: Callable[[], None] | None,
                progress: Callable[[str, int], None] | None, cap: int, counters: dict[str, float]) -> list[SourceFile]:
    """Each group of districts exported by a part's process (``export_parts._Parts``) in the
    export's snapshot: its own query (``tenant = ANY(its districts)``), so each district's
    rows are read once, by one process, into the very files one process would write. The
    files are listed for removal before any is made."""
    written += [out_dir / s.tenant / f"{kind}.{WRITERS[fmt][1]}" for group in groups for s in group]
    snap = parts.snapshot_of(conn)
    done = parts.run_tasks(conn, kind, [(_group_part, (parts.url, snap, group, kind, since, until, fmt, str(out_dir), cap, k))
                                        for k, group in enumerate(groups)], check, progress)
    files: list[SourceFile] = []
    for made, theirs, (cpu, rss, backend) in done:
        files += made
        for name in ("peak_buffered", "peak_cached"):
            counters[name] = max(counters[name], theirs[name])
        for name in ("flushes", "forgotten"):
            counters[name] += theirs[name]
        parts.stats["worker_cpu_s"] += cpu
        parts.stats["worker_backend_cpu_s"] += backend
        parts.stats["worker_rss_mib"] = max(parts.stats["worker_rss_mib"], rss * len(groups))
    parts.stats["workers"] = len(groups)
    order = {s.tenant: i for i, s in enumerate(sources)}
    return sorted(files, key=lambda f: order[f.tenant])  # in the sources' order, as one process lists them


def _group_part(url: str, snap: str, sources: list[Source], kind: str, since: int | None, until: int, fmt: str, out_dir: str,
                cap: int, part: int) -> tuple[list[SourceFile], dict[str, float], tuple[float, float, float]]:
    """A group of districts in a part's process: the export's snapshot adopted, then as one
    process reads them all (``_read_split``)."""
    from .export_parts import in_snapshot, part_hooks

    check, progress = part_hooks(part)
    counters = {"peak_buffered": 0.0, "flushes": 0.0, "peak_cached": 0.0, "forgotten": 0.0}
    with in_snapshot(url, snap) as (dbapi, measured):
        files = _read_split(dbapi, sources, kind, since, until, fmt, Path(out_dir), [], check, progress, cap, counters, in_part=True)
    return files, counters, measured()


# --- which grants ------------------------------------------------------------------------------------

def granted(grant_store: GrantStore, *, recipient: str | None, grant_ids: Sequence[uuid.UUID], kinds: Sequence[str],
            refused: Callable[[str], Exception]) -> tuple[str, list[Grant]]:
    """The recipient and the grants of a multi-grant export: the grants named (all made to one
    recipient: ``recipient`` when given), or with none named every grant to ``recipient`` that
    allows exports now and covers one of ``kinds`` (every kind when empty). A grant unknown,
    made to someone else, revoked, expired or not allowing exports raises ``refused(message)``
    (the API's 403, the command line's error), as for a single grant; so do two grants of one
    district (its folder would hold two exports: name one)."""
    wanted = set(kinds) or set(RECORD_TYPES)
    if grant_ids:
        found: list[Grant] = []
        for gid in dict.fromkeys(grant_ids):
            try:
                g = grant_store.get(gid, tenant=recipient)
            except NotFound:
                raise refused(f"grant {gid} is unknown, revoked, expired or does not allow exports") from None
            if not g.allows("exports"):
                raise refused(f"grant {gid} is revoked, expired, not yet started or does not allow exports")
            found.append(g)
        recipients = sorted({g.grantee for g in found})
        if len(recipients) > 1 or (recipient is not None and recipients != [recipient]):
            raise refused(f"the grants are made to {', '.join(recipients)}: one export serves one recipient")
        chosen = found
    else:
        if recipient is None:
            raise refused("name the grants or their recipient")
        chosen = [g for g in grant_store.active_for(recipient, "exports") if wanted & set(g.kinds)]
        if not chosen:
            raise refused(f"no active grant to {recipient} allows exports of {', '.join(sorted(wanted))}")
    by_tenant: dict[str, list[str]] = {}
    for g in chosen:
        by_tenant.setdefault(g.grantor, []).append(str(g.id))
    twice = {t: ids for t, ids in by_tenant.items() if len(ids) > 1}
    if twice:
        raise refused("one grant per district: " + "; ".join(f"{t} granted {', '.join(ids)}" for t, ids in sorted(twice.items()))
                      + " (name the one to export with --grant)")
    if not any(wanted & set(g.kinds) for g in chosen):
        raise refused(f"the grants cover none of the kinds asked ({', '.join(sorted(wanted))})")
    return chosen[0].grantee, sorted(chosen, key=lambda g: g.grantor)


def sources_of(grants: Sequence[Grant], *, key: bytes, engine: Any) -> list[Source]:
    """Each grant's district, read as that grant shows it: de-identified for its grantee
    (pseudonyms keyed per recipient, record ids per district) when the grant says so."""
    pseudonyms = {g.grantee: Pseudonymizer(key, g.grantee) for g in grants}  # one a recipient: one helper process serves them
    return [Source(g.grantor, str(g.id), Deidentifier(pseudonyms[g.grantee], StateIds(engine, g.grantor)) if g.deidentified
                   else None, frozenset(g.kinds)) for g in grants]


def still_granted(grant_store: GrantStore, recipient: str, grant_ids: Sequence[uuid.UUID]) -> None:
    """Raise PermissionError unless every grant still allows exports (one query for them all)."""
    active = {g.id for g in grant_store.active_for(recipient, "exports")}
    gone = [str(g) for g in grant_ids if g not in active]
    if gone:
        raise PermissionError(f"grant {', '.join(gone)} was revoked or has expired")


__all__ = ["BUFFER_ROWS", "SEQSCAN_FROM", "ManyManifest", "Source", "SourceFile", "export_many", "granted", "sources_of",
           "still_granted"]
