"""CASE 1.0 (1EdTech Competencies and Academic Standards Exchange): frameworks in and out.

- ``cf_package``: CFPackage JSON -> canonical Framework / Competency / Relation /
  ProficiencyScale, validated against the published schema (schemas/case/) and the rules it
  cannot express; ``schema`` (the compiled validator), ``formats`` (CASE's primitive types) and
  ``fields`` (CASE member <-> canonical field) serve it.
- ``emit``: stored canonical records -> CASE JSON; ``equivalence``: CFPackage comparison.
- ``provider``: the CASE 1.0 REST provider API at ``/ims/case/v1p0/``.
- ``client``: a CASE provider client (paging CFDocuments, fetching CFPackages; OAuth 2.0
  client credentials when the provider asks).
- ``cli``: ``tessera import case`` (a file or a provider) and ``tessera export case``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import ConfigError, Deviations, ErrorDetail, NotFound, ValidationError
from gateway.gc_pause import paused_gc
from gateway.model import Competency, Framework, ProficiencyScale, Record, Relation
from gateway.store.competencies import CompetencyRepository, FrameworkImport

from .cf_package import CasePackage, parse_package
from .emit import Emitter
from .trees import check_tree

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext
    from gateway.store import ApplyResult, Store

MEDIA_TYPE = "application/json"
SAMPLES = Path(__file__).resolve().parent / "samples"
#: the bundled demo frameworks: a state framework, and a district framework crosswalked to it
DEMO_PACKAGES = ("northwind-state-mathematics.json", "cedar-valley-mathematics.json")


#: The CASE 1.0 scopes CASE consumers ask token endpoints for (the CASE Network's, as OpenSALT's
#: mirror and CASE Network clients send them): both read frameworks, Tessera's competencies.readonly
CASE_SCOPE_URIS = {
    "http://purl.imsglobal.org/casenetwork/case/v1p0/scope/core.readonly": "competencies.readonly",
    "http://purl.imsglobal.org/casenetwork/case/v1p0/scope/all.readonly": "competencies.readonly",
}


class CaseAdapter:
    name = "case"
    title = "CASE 1.0 competency frameworks"
    scope_uris = CASE_SCOPE_URIS

    # --- wire -> canonical ----------------------------------------------------------------------

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str = "case", **options: Any) -> list[Record]:
        """A CFPackage (bytes, or chunks of bytes) -> canonical records (see ``cf_package``)."""
        return self.parse_package(data, tenant=tenant, source=source, **options).records

    def parse_package(self, data: bytes | Iterable[bytes] | dict[str, Any], *, tenant: str, source: str = "case",
                      strict: bool = False, name: str | None = None, devs: Deviations | None = None) -> CasePackage:
        """Validate and map one CFPackage; ``name`` (a file name, a URL) prefixes error locations.
        Deviations go to ``devs`` (default: a new ``Deviations(strict=strict)``), which becomes
        the package's ``deviations``."""
        if not isinstance(data, (bytes, str, dict)):
            data = b"".join(data)
        with paused_gc():
            try:
                return parse_package(data, tenant=tenant, source=source, strict=strict, devs=devs)
            except ValidationError as exc:
                if name:
                    exc.errors = [ErrorDetail(e.message, f"{name} {e.location}" if e.location else name, e.field) for e in exc.errors]
                raise

    def check_package(self, store: Store | None, tenant: str, data: bytes | dict[str, Any] | CasePackage, *, source: str = "case",
                      strict: bool = False, name: str | None = None, devs: Deviations | None = None) -> CasePackage:
        """Everything an import checks, writing nothing (``tessera validate case``, ``--dry-run``):
        parse and map, then the isChildOf ends outside the package against ``store``
        (``trees.check_tree``). Raises ValidationError carrying every problem; what was
        tolerated until then is in ``devs`` when given."""
        with paused_gc():
            pkg = data if isinstance(data, CasePackage) else self.parse_package(data, tenant=tenant, source=source, strict=strict,
                                                                                name=name, devs=devs)
            devs = pkg.deviations
            if not pkg.trees_checked:  # a package checked for a dry run is imported without a second report
                check_tree(store, tenant, pkg, devs)
                pkg.trees_checked = True
        if devs.errors:
            errors = devs.errors.errors
            if name:
                errors = [ErrorDetail(e.message, f"{name} {e.location}" if e.location else name, e.field) for e in errors]
            raise ValidationError("the CFPackage was rejected; nothing was stored", errors=errors)
        return pkg

    def import_package(self, store: Store, tenant: str, data: bytes | dict[str, Any] | CasePackage, *, source: str = "case",
                       force: bool = False, strict: bool = False, name: str | None = None) -> tuple[CasePackage, FrameworkImport]:
        """Parse, check (``check_package``) and store one CFPackage atomically, updating a stored
        version in place (``CompetencyRepository.import_framework``: older versions refused
        unless ``force``, items that disappeared marked ``tobedeleted``). ``name`` prefixes
        error locations. A ``CasePackage`` given is checked against the store unless it was already."""
        with paused_gc():  # one pause for both steps: re-enabling in between makes the collector walk every new object
            pkg = self.check_package(store, tenant, data, source=source, strict=strict, name=name)
            done = CompetencyRepository.of(store).import_framework(tenant, pkg.records, force=force)
        return pkg, done

    # --- canonical -> wire ----------------------------------------------------------------------

    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        """Canonical records -> one CFPackage JSON document per framework among them."""
        frameworks: dict[Any, dict[str, Any]] = {}
        parts: dict[Any, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for rec in records:
            doc = rec.model_dump(mode="json", exclude_none=True)
            if isinstance(rec, Framework):
                frameworks[rec.id] = doc
            elif isinstance(rec, (Competency, Relation, ProficiencyScale)) and getattr(rec, "framework_id", None) is not None:
                if rec.status.value == "active":
                    parts[rec.framework_id][rec.KIND].append(doc)
        emitter = Emitter(options.get("base", ""))
        for fid, fw in frameworks.items():
            p = parts[fid]
            yield orjson.dumps(emitter.package(fw, p["competency"], p["relation"], p["proficiency_scale"]))

    def export_package(self, store: Store, tenant: str, document: str, *, base: str = "") -> dict[str, Any]:
        """The CFPackage of the tenant's framework whose CASE identifier is ``document``."""
        import uuid

        try:
            guid = uuid.UUID(document)
        except ValueError:
            raise NotFound(f"{document!r} is not a CFDocument identifier (a UUID)") from None
        repo = CompetencyRepository.of(store)
        fw = repo.framework_by_guid(tenant, guid)
        items, assocs, scales = repo.framework_contents(tenant, uuid.UUID(fw["id"]))
        return Emitter(base).package(fw, items, assocs, scales)

    # --- demo, routers, CLI ------------------------------------------------------------------------

    def load_demo(self, store: Store, tenant: str, console: Any = None) -> ApplyResult:
        """Load the bundled sample frameworks (``samples/``): a K-8 mathematics framework with
        a hierarchy, precedes chains and a rubric, and a state framework crosswalked to it."""
        from gateway.store.records import ApplyResult, KindCounts

        if tenant != "demo":
            raise ConfigError(f"the bundled sample data belongs to tenant 'demo', not {tenant!r}")
        total = ApplyResult(batch_id=__import__("uuid").uuid4())
        for name in DEMO_PACKAGES:
            if console is not None:
                console.print(f"CASE sample: {name}")
            _, done = self.import_package(store, tenant, (SAMPLES / name).read_bytes(), source="case", name=name, force=True)
            for kind, c in done.result.counts.items():
                acc = total.counts.setdefault(kind, KindCounts())
                acc.created += c.created
                acc.updated += c.updated
                acc.unchanged += c.unchanged
            total.outbox += done.result.outbox
        return total

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        from .provider import build_router

        return [build_router(self, ctx)]

    def routing_roles(self) -> Mapping[str, Any]:
        """``case.client``: pull the frameworks a CASE provider changed (``routing``)."""
        from .routing import roles

        return roles(self)

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer, *, validate_app: typer.Typer | None = None) -> None:
        from .cli import register

        register(self, import_app, export_app, validate_app)


__all__ = ["CASE_SCOPE_URIS", "CaseAdapter", "CasePackage", "DEMO_PACKAGES", "SAMPLES"]
