"""Which tenant a record sent to the gateway belongs to: one rule for every way records
arrive as canonical JSON (``POST /v1/batches``, ``POST /ndjson/records``, ``tessera import
ndjson``).

- A record that names no ``tenant`` belongs to the tenant it is written to (the caller's
  tenant, or the import's ``--tenant``).
- A record that names another tenant is refused: a file or batch meant for one tenant is
  never written into another by mistake.

A record without ``tenant`` may still carry an ``id``: it is then a label, local to the batch
or file. The record's id is always derived from the tenant it is written to (``record_id``),
and every reference to the label in the same batch or file is rewritten to that id. So a
batch or file whose records name no tenant loads into any tenant, with its references
intact: the bundled demo district (``adapters/ndjson/samples/demo-district.ndjson``) is such
a file. A label that is already the derived id (a client that computes ids for its own
tenant) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import record_id

_UUID_TEXT_LENGTH = 36


def claim_tenant(obj: dict[str, Any], tenant: str) -> dict[str, Any]:
    """``obj`` as a record of ``tenant``: its own ``tenant`` when it names this one, else
    given ``tenant`` when it names none. ValueError (the message names both tenants) when it
    names another."""
    named = obj.get("tenant")
    if named is None and "tenant" not in obj:
        return {**obj, "tenant": tenant}
    if named != tenant:
        raise ValueError(f"the record is for tenant {named!r}, and this write is for tenant {tenant!r} "
                         "(a record without \"tenant\" is written to the tenant of the write)")
    return obj


def labels(objs: Iterable[dict[str, Any]], tenant: str) -> dict[str, str]:
    """The labels to rewrite: the ``id`` of each record that named no tenant -> the id
    derived for it in ``tenant``, for the ids that differ. Call it on the objects as they
    arrived (before ``claim_tenant``); records whose key fields are unusable are skipped
    (their own validation reports them)."""
    found: dict[str, str] = {}
    for obj in objs:
        if "tenant" in obj:
            continue
        label, kind, source, native = obj.get("id"), obj.get("kind"), obj.get("source"), obj.get("native_id")
        if not (isinstance(label, str) and isinstance(kind, str) and isinstance(source, str) and isinstance(native, str)):
            continue
        derived = str(record_id(tenant, kind, source, native))
        if label.lower() != derived:
            found[label.lower()] = derived
    return found


def relabel(value: Any, mapping: dict[str, str]) -> Any:
    """``value`` (a record's JSON) with every string that is a label of ``mapping`` replaced
    by its id; the same object when nothing changes."""
    if isinstance(value, str):
        return mapping.get(value.lower(), value) if len(value) == _UUID_TEXT_LENGTH else value
    if isinstance(value, dict):
        return {k: relabel(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [relabel(v, mapping) for v in value]
    return value


__all__ = ["claim_tenant", "labels", "relabel"]
