"""Stored canonical records (JSON, the store's form) -> CASE 1.0 JSON: ``Emitter``.

CFDocument, CFItem, CFAssociation, CFRubric(Criterion) and the whole CFPackage, rebuilt from
the canonical fields and the members kept in ``extensions["case"]`` at import (see ``fields``
and ``cf_package``), so an imported package comes back equivalent (``equivalence``).
"""

from __future__ import annotations

from typing import Any

from .fields import (
    ASSOCIATION_FIELDS,
    DOCUMENT_FIELDS,
    ITEM_ALIASES,
    ITEM_FIELDS,
    RELATION_TO_CASE,
    join_members,
)


def _case(doc: dict[str, Any]) -> dict[str, Any]:
    return (doc.get("extensions") or {}).get("case") or {}


def _link(title: str | None, identifier: str, uri: str) -> dict[str, Any]:
    return {"title": title or "", "identifier": identifier, "uri": uri}


class Emitter:
    """Builds CASE 1.0 JSON from stored canonical records (as JSON dicts, the store's form).

    ``base`` is the provider's base URL (``.../ims/case/v1p0``), used only for URIs a record
    does not carry (a framework created outside CASE)."""

    def __init__(self, base: str = "") -> None:
        self.base = base.rstrip("/")

    def _uri(self, kind: str, ident: str) -> str:
        return f"{self.base}/{kind}/{ident}"

    @staticmethod
    def identifier(doc: dict[str, Any]) -> str:
        return doc.get("guid") or doc["id"]

    def document(self, fw: dict[str, Any], *, standalone: bool = False) -> dict[str, Any]:
        """CFDocument: in a package as imported; ``standalone`` (CFDocuments endpoints) adds the
        CFPackageURI link object CFDocument.Type requires."""
        ext = _case(fw)
        out: dict[str, Any] = {}
        join_members(fw, DOCUMENT_FIELDS, ext.get("document") or {}, out)
        ident = self.identifier(fw)
        out.setdefault("identifier", ident)
        out.setdefault("uri", self._uri("CFDocuments", ident))
        out.setdefault("creator", fw.get("creator") or fw.get("publisher") or "")
        out.setdefault("lastChangeDateTime", fw.get("published_at") or fw.get("updated_at") or "")
        if standalone:
            pkg = out.get("CFPackageURI")
            if not isinstance(pkg, dict):
                out["CFPackageURI"] = _link(out.get("title"), ident, pkg if isinstance(pkg, str) and pkg else self._uri("CFPackages", ident))
        return out

    def document_link(self, fw: dict[str, Any]) -> dict[str, Any]:
        return _link(fw.get("title"), self.identifier(fw), fw.get("uri") or self._uri("CFDocuments", self.identifier(fw)))

    def item(self, c: dict[str, Any], fw: dict[str, Any] | None = None, *, standalone: bool = False) -> dict[str, Any]:
        kept = _case(c)
        out: dict[str, Any] = {}
        skip = frozenset({"educationLevel"}) if "educationLevel" not in kept and any(a in kept for a in ITEM_ALIASES) else frozenset()
        join_members(c, ITEM_FIELDS, kept, out, skip)
        ident = self.identifier(c)
        out.setdefault("identifier", ident)
        out.setdefault("uri", self._uri("CFItems", ident))
        out.setdefault("lastChangeDateTime", c.get("published_at") or c.get("updated_at") or "")
        if standalone and fw is not None and not isinstance(out.get("CFDocumentURI"), dict):
            out["CFDocumentURI"] = self.document_link(fw)
        return out

    _ENDS = (("originNodeURI", "origin_guid", "origin_id", "origin_uri"), ("destinationNodeURI", "destination_guid", "destination_id", "destination_uri"))
    _ASSOCIATION_OWN = frozenset({"identifier", "uri", "originNodeURI", "destinationNodeURI", "CFAssociationGroupingURI", *ASSOCIATION_FIELDS})

    def association(self, r: dict[str, Any], fw: dict[str, Any] | None = None, *, standalone: bool = False) -> dict[str, Any]:
        kept = _case(r)
        ident = kept.get("identifier") or r["native_id"]
        out: dict[str, Any] = {"identifier": ident, "uri": kept.get("uri") or self._uri("CFAssociations", ident),
                               "associationType": RELATION_TO_CASE.get(r["type"], r["type"])}
        for member, guid, rid, uri in self._ENDS:
            link = kept.get(member) or {}
            out[member] = {"title": link.get("title", ""), "identifier": link.get("identifier") or r.get(guid) or r.get(rid) or "",
                           "uri": r.get(uri) or link.get("uri") or ""}
        if "CFAssociationGroupingURI" in kept:
            grouping = kept["CFAssociationGroupingURI"]
            if r.get("grouping") is not None and isinstance(grouping, dict):
                out["CFAssociationGroupingURI"] = {"title": grouping.get("title", ""), "identifier": grouping.get("identifier", r["grouping"]),
                                                   "uri": grouping.get("uri", "")}
            elif grouping is None:
                out["CFAssociationGroupingURI"] = None
        join_members(r, ASSOCIATION_FIELDS, {k: v for k, v in kept.items() if k not in self._ASSOCIATION_OWN or k in ASSOCIATION_FIELDS}, out)
        if "lastChangeDateTime" not in out:
            out["lastChangeDateTime"] = r.get("published_at") or r.get("updated_at") or ""
        if standalone and fw is not None and not isinstance(out.get("CFDocumentURI"), dict):
            out["CFDocumentURI"] = self.document_link(fw)
        return out

    def criterion(self, s: dict[str, Any]) -> dict[str, Any]:
        ext = _case(s)
        out = dict(ext.get("criterion") or {"identifier": s["native_id"], "uri": self._uri("CFRubricCriteria", s["native_id"])})
        out.setdefault("lastChangeDateTime", s.get("source_updated_at") or s.get("updated_at") or "")
        if ext.get("hasLevels", True):
            out["CFRubricCriterionLevels"] = ext.get("levels") or [
                {"identifier": lv["code"], "uri": self._uri("CFRubricCriterionLevels", lv["code"]), "quality": lv["label"],
                 **({"description": lv["description"]} if lv.get("description") else {}), "position": lv["rank"],
                 "lastChangeDateTime": out["lastChangeDateTime"]}
                for lv in s.get("levels", [])
            ]
        return out

    def rubrics(self, fw: dict[str, Any], scales: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_id = {s["native_id"]: s for s in scales}
        out = []
        for sk in _case(fw).get("rubrics") or []:
            r = {k: v for k, v in sk.items() if k != "CFRubricCriteria"}
            if "CFRubricCriteria" in sk:
                r["CFRubricCriteria"] = [
                    c["raw"] if "raw" in c else self.criterion(by_id[c["scale"]]) for c in sk["CFRubricCriteria"] if "raw" in c or c["scale"] in by_id
                ]
            out.append(r)
        return out

    @staticmethod
    def definitions_of(fw: dict[str, Any]) -> Any:
        """The CFDefinitions imported with a framework (as given), or None."""
        return _case(fw).get("definitions")

    @staticmethod
    def rubric_skeletons(fw: dict[str, Any]) -> list[dict[str, Any]]:
        return _case(fw).get("rubrics") or []

    def package(self, fw: dict[str, Any], items: list[dict[str, Any]], assocs: list[dict[str, Any]],
                scales: list[dict[str, Any]]) -> dict[str, Any]:
        """CFPackage: the document, its (active) items and associations, definitions, rubrics."""
        ext = _case(fw)
        members = ext.get("members") or ["CFDocument", "CFItems", "CFAssociations"]
        out: dict[str, Any] = {"CFDocument": self.document(fw)}
        out["CFItems"] = [self.item(c) for c in items]
        out["CFAssociations"] = [self.association(a) for a in assocs]
        if "definitions" in ext:
            out["CFDefinitions"] = ext["definitions"]
        elif "CFDefinitions" in members:
            out["CFDefinitions"] = {}
        rubrics = self.rubrics(fw, scales)
        if rubrics or "CFRubrics" in members:
            out["CFRubrics"] = rubrics
        return out



__all__ = ["Emitter"]
