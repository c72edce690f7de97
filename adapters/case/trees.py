"""Broken CASE trees: an isChildOf association whose child or parent is nowhere.

CASE 1.0 builds a framework's hierarchy from ``isChildOf`` associations: the origin is the
child, the destination its parent (a CFItem, or the CFDocument for a top-level item; OpenSALT
names the inverse ``isParentOf``). An association may have one end outside its package
(``cf_package`` keeps it as an external reference, resolved by identifier when the other
framework is stored); both ends outside is an error there.

For an isChildOf, the end outside the package must be a framework or competency the store
already holds (another framework of the tenant, imported earlier): otherwise the tree is
broken, a child that is nowhere or an item hanging under a parent that is nowhere. That is a
``broken-tree`` deviation: tolerated with a warning (the association is stored with the
end's identifier and URI, and resolves by itself when a later import brings the end), an
error with ``--strict``. Crosswalks (``exactMatchOf``, ``isRelatedTo``, ... to other
frameworks' URIs) are not tree edges and are never checked here.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from gateway.errors import Deviations
from gateway.store.native_ids import competency_ids_by_guid, ids_by_native_id

from .formats import is_uuid

if TYPE_CHECKING:
    from gateway.store import Store

    from .cf_package import CasePackage

#: which node an isChildOf end is
ROLE = {"originNodeURI": "child (origin)", "destinationNodeURI": "parent (destination)"}


def check_tree(store: Store | None, tenant: str, pkg: CasePackage, devs: Deviations) -> None:
    """Report every isChildOf end of ``pkg`` that is in neither the package nor ``store``
    (all of them when there is no store) as a ``broken-tree`` deviation in ``devs``."""
    if not pkg.outside:
        return
    known: set[str] = set()
    if store is not None:
        guids = {uuid.UUID(e.identifier) for e in pkg.outside if is_uuid(e.identifier)}
        if guids:
            known |= {str(g) for g in competency_ids_by_guid(store.engine, tenant, guids)}
            known |= set(ids_by_native_id(store.engine, tenant, "framework", [str(g) for g in guids]))
    then = "" if devs.strict else "; the association is kept, unresolved until a framework bringing it is imported"
    for e in pkg.outside:
        if is_uuid(e.identifier) and e.identifier.lower() in known:
            continue
        devs.tolerate(
            "broken-tree",
            f"a broken tree: the isChildOf {ROLE[e.end]} {e.identifier!r} ({e.uri}) is neither in this package nor stored "
            f"for tenant {tenant!r}{then}",
            location=f"{e.path}.{e.end}", field=e.end,
        )


__all__ = ["check_tree"]
