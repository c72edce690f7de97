"""When two CFPackages are the same package: ``package_equivalent`` (round-trip checks).

Arrays of identified CASE objects compare by ``identifier`` (CASE 1.0 leaves their order to
the provider); everything else compares exactly, types included.
"""

from __future__ import annotations

from typing import Any


def package_equivalent(a: Any, b: Any, path: str = "$") -> list[str]:
    """Differences between two CFPackages, with arrays of identified objects compared by
    identifier (a provider may order them differently). Empty when equivalent."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                diffs.append(f"{path}.{k}: only in {'first' if k in a else 'second'}")
            else:
                diffs.extend(package_equivalent(a[k], b[k], f"{path}.{k}"))
        return diffs
    if isinstance(a, list) and isinstance(b, list):
        keyed = all(isinstance(x, dict) and "identifier" in x for x in a + b)
        if keyed:
            ka = {x["identifier"]: x for x in a}
            kb = {x["identifier"]: x for x in b}
            if len(ka) != len(a) or len(kb) != len(b):
                return [f"{path}: duplicate identifiers"]
            diffs = [f"{path}[{k}]: only in {'first' if k in ka else 'second'}" for k in sorted(set(ka) ^ set(kb))]
            for k in sorted(set(ka) & set(kb)):
                diffs.extend(package_equivalent(ka[k], kb[k], f"{path}[{k}]"))
            return diffs
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} elements"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in package_equivalent(x, y, f"{path}[{i}]")]
    if a != b or type(a) is not type(b):
        return [f"{path}: {a!r} != {b!r}"]
    return []


__all__ = ["package_equivalent"]
