"""The import rules of the house (DESIGN section 1, adapters/README.md), checked on the source.

Every module of ``gateway/``, ``adapters/`` and ``conformance/`` is read with ``ast``; every
import counts, including those inside functions and under ``TYPE_CHECKING`` (a cycle hidden
in a function is still a cycle a reader must hold in their head). An import names the
module it reads: ``from pkg import sub`` where ``pkg.sub`` is a module is an edge to
``pkg.sub``; ``from pkg import NAME`` where NAME is defined in ``pkg/__init__.py`` is an edge
to ``pkg``. Each rule is its own test and names every module or edge that breaks it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("gateway", "adapters", "conformance")
#: a module longer than this says why in its docstring, on a line holding ``LONG_MARKER``
MAX_LINES = 600
LONG_MARKER = "Over 600 lines because"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    package: bool


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            package = parts[-1] == "__init__"
            if package:
                parts = parts[:-1]
            found[".".join(parts)] = Module(".".join(parts), path, package)
    return found


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) lives in."""
    mods = modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


@cache
def edges() -> tuple[Edge, ...]:
    mods = modules()
    found: list[Edge] = []
    for mod in mods.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"), filename=str(mod.path))
        package = mod.name.split(".") if mod.package else mod.name.split(".")[:-1]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for alias in node.names:
                    sub = f"{origin}.{alias.name}"
                    targets.append(sub if sub in mods else origin)
            for target in targets:
                resolved = _resolve(target)
                if resolved is not None and resolved != mod.name:
                    found.append(Edge(mod.name, resolved, node.lineno))
    return tuple(found)


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        g[e.source].add(e.target)
    return g


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each given as one
    concrete cycle through its first module, so the message shows a path to cut."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:  # iterative enough for this tree's depth
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(modules()):
        if v not in index:
            visit(v)
    return [_one_cycle(sorted(comp)[0], comp, g) for comp in found]


def _one_cycle(start: str, comp: set[str], g: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside ``comp`` (breadth first)."""
    prev: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(g[v] & comp):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return sorted(comp)


def _cycle_text(cycle: list[str]) -> str:
    out = [cycle[0]]
    for a, b in zip(cycle, cycle[1:], strict=False):
        line = next(e.line for e in edges() if e.source == a and e.target == b)
        out.append(f" -> {b} (line {line} of {a})")
    return "".join(out)


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _adapter_of(name: str) -> str | None:
    """``adapters.xapi.statements`` -> ``adapters.xapi``; ``adapters.base`` is no adapter."""
    parts = name.split(".")
    if parts[0] != "adapters" or len(parts) < 2 or parts[1] == "base":
        return None
    return ".".join(parts[:2])


def breaking(predicate) -> Iterator[str]:  # noqa: ANN001 - a small local helper
    for e in edges():
        if predicate(e):
            yield str(e)


# --- (a) no import cycles -----------------------------------------------------------------------

def test_no_import_cycles_at_all() -> None:
    found = cycles()
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(_cycle_text(c) for c in found)


# --- (b) the core knows no adapter ---------------------------------------------------------------


def test_model_store_and_mastery_import_nothing_from_adapters() -> None:
    bad = list(breaking(lambda e: _under(e.source, "gateway.model", "gateway.store", "gateway.mastery")
                        and _under(e.target, "adapters")))
    assert not bad, "the model, the store and the mastery engine import adapters:\n" + "\n".join(bad)


def test_only_the_composition_root_imports_adapters() -> None:
    bad = list(breaking(lambda e: _under(e.source, "gateway") and e.source != "gateway.wiring" and _under(e.target, "adapters")))
    assert not bad, "only gateway/wiring.py may import adapters:\n" + "\n".join(bad)


def test_no_adapter_imports_the_composition_root() -> None:
    bad = list(breaking(lambda e: _under(e.source, "adapters") and e.target == "gateway.wiring"))
    assert not bad, "adapters importing gateway.wiring (the root imports them, never the reverse):\n" + "\n".join(bad)


# --- (c) the store knows no listener --------------------------------------------------------------


def test_the_store_imports_nothing_from_mastery() -> None:
    bad = list(breaking(lambda e: _under(e.source, "gateway.store") and _under(e.target, "gateway.mastery")))
    assert not bad, "gateway/store imports gateway/mastery:\n" + "\n".join(bad)


# --- (d) adapters are independent --------------------------------------------------------------------


def test_no_adapter_imports_another() -> None:
    def crosses(e: Edge) -> bool:
        a, b = _adapter_of(e.source), _adapter_of(e.target)
        return a is not None and b is not None and a != b

    bad = list(breaking(crosses))
    assert not bad, "adapters importing other adapters:\n" + "\n".join(bad)


# --- (e) adapters use the store's repositories and the CLI kit ------------------------------------------


def test_no_adapter_imports_the_store_tables() -> None:
    bad = list(breaking(lambda e: _adapter_of(e.source) is not None and e.target == "gateway.store.tables"))
    assert not bad, "adapters importing gateway.store.tables (ask the store for a repository):\n" + "\n".join(bad)


def test_no_adapter_imports_the_cli() -> None:
    bad = list(breaking(lambda e: _under(e.source, "adapters") and e.target == "gateway.cli"))
    assert not bad, "adapters importing gateway.cli (use gateway.cli_kit):\n" + "\n".join(bad)


# --- (f) modules stay small, or say why -------------------------------------------------------------


def test_no_module_over_600_lines_without_a_reason() -> None:
    bad = []
    for mod in modules().values():
        text = mod.path.read_text(encoding="utf-8")
        n = text.count("\n")
        if n <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if LONG_MARKER not in doc:
            bad.append(f"{mod.path.relative_to(ROOT)}: {n} lines")
    assert not bad, f"modules over {MAX_LINES} lines whose docstring has no line '{LONG_MARKER} ...':\n" + "\n".join(bad)


# --- the checker itself ---------------------------------------------------------------------------


def test_the_checker_sees_imports_inside_functions_and_under_type_checking() -> None:
    """``adapters.base`` imports ``gateway.api.context`` under TYPE_CHECKING only, and
    ``gateway.cli`` imports ``gateway.wiring`` inside functions only: both are edges."""
    pairs = {(e.source, e.target) for e in edges()}
    assert ("adapters.base", "gateway.api.context") in pairs
    assert ("gateway.cli", "gateway.wiring") in pairs
