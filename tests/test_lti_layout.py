"""The LTI adapter's two roles stay apart: Tessera as a tool (``adapters/lti/tool``) and as a
platform (``adapters/lti/platform``) never import each other, and no LTI module reads the
core's tables (it asks the store's repositories). What both roles share lives in
``adapters/lti/claims.py``, ``roles.py``, ``pages.py`` and ``metadata.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LTI = Path(__file__).resolve().parents[1] / "adapters" / "lti"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (inside functions and under TYPE_CHECKING too), absolute."""
    package = ["adapters", "lti", *path.relative_to(LTI).parent.parts]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize(("side", "other"), [("tool", "platform"), ("platform", "tool")])
def test_one_role_never_imports_the_other(side: str, other: str) -> None:
    forbidden = f"adapters.lti.{other}"
    for path in sorted((LTI / side).rglob("*.py")):
        wrong = sorted(m for m in imported(path) if m == forbidden or m.startswith(forbidden + "."))
        assert not wrong, f"{path.relative_to(LTI)} imports {wrong}"


def test_no_lti_module_reads_the_core_tables() -> None:
    for path in sorted(LTI.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        assert "gateway.store.tables" not in imported(path), f"{path.relative_to(LTI)} imports gateway.store.tables"
