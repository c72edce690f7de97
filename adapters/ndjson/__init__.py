"""Canonical NDJSON: one canonical record per line, the gateway's own lossless format.

It proves the adapter seam end to end (parse, emit, router, CLI) and is the simplest way
to move a tenant's data between gateways, to load fixtures, or to feed a data lake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import ErrorCollector, ErrorDetail, MalformedInput, ValidationError
from gateway.model import RECORD_TYPES, Record, parse_record
from gateway.model.tenancy import claim_tenant, labels, relabel

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext
    from gateway.store import ApplyResult, Store

SAMPLES = Path(__file__).resolve().parent / "samples"


class NdjsonAdapter:
    name = "ndjson"
    title = "Canonical records as newline-delimited JSON"

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str | None = None, **options: Any) -> list[Record]:
        """Every line must be one canonical record; blank lines are skipped. Which tenant a
        line is for follows ``gateway.model.tenancy``, the rule of ``/v1/batches``: a line
        without ``tenant`` is ``tenant``'s (its ``id``, if any, a label the file's references
        use), a line naming another tenant is refused. All problems are collected (up to
        1000) and reported as ``line N``, field path."""
        lines = data.splitlines() if isinstance(data, bytes) else data
        objs: list[tuple[str, dict[str, Any]]] = []
        errors = ErrorCollector()
        for n, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            where = f"line {n}"
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                errors.add(f"not valid JSON: {exc}", location=where)
                continue
            if not isinstance(obj, dict):
                errors.add("expected a JSON object", location=where)
                continue
            if obj.get("kind") not in RECORD_TYPES:
                errors.add(f"unknown or missing kind {obj.get('kind')!r}; expected one of {sorted(RECORD_TYPES)}", location=where, field="kind")
                continue
            objs.append((where, obj))
        mapping = labels((obj for _, obj in objs), tenant)
        records: list[Record] = []
        for where, obj in objs:
            try:
                obj = claim_tenant(obj, tenant)
            except ValueError as exc:
                errors.add(str(exc), location=where, field="tenant")
                continue
            try:
                records.append(parse_record(relabel(obj, mapping) if mapping else obj, location=where))
            except ValidationError as exc:
                for e in exc.errors:
                    errors.add(e.message, location=e.location, field=e.field)
        if errors:
            malformed = all(e.message.startswith("not valid JSON") for e in errors.errors)
            errors.raise_if_any("the NDJSON input was rejected; nothing was stored", MalformedInput if malformed else ValidationError)
        return records

    def parse_file(self, path: Path, *, tenant: str) -> list[Record]:
        with path.open("rb") as fh:
            return self.parse_named(fh, name=path.name, tenant=tenant)

    def parse_named(self, lines: Iterable[bytes], *, name: str, tenant: str) -> list[Record]:
        """``parse``, with every error location prefixed by the file's name."""
        try:
            return self.parse(lines, tenant=tenant)
        except ValidationError as exc:
            exc.errors = [ErrorDetail(e.message, f"{name} {e.location}" if e.location else name, e.field) for e in exc.errors]
            raise

    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        for rec in records:
            yield orjson.dumps(rec.model_dump(mode="json", exclude_none=True)) + b"\n"

    def load_demo(self, store: Store, tenant: str, console: Any = None) -> ApplyResult:
        """Load the bundled fictional district (``samples/demo-district.ndjson``) into ``tenant``:
        its records name no tenant, so they load into any (``gateway.model.tenancy``)."""
        records = self.parse((SAMPLES / "demo-district.ndjson").read_bytes(), tenant=tenant)
        return store.records.apply(tenant, records)

    def routing_roles(self) -> Mapping[str, Any]:
        """``tessera``: deliver canonical records to another Tessera's NDJSON import (``routing``)."""
        from .routing import ROLES

        return ROLES

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        from .router import build_router

        return [build_router(self, ctx)]

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer) -> None:
        from .cli import register

        register(self, import_app, export_app)
