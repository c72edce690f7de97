"""Does every rule of adapters/xapi/validation.py have a test that fails without it?

Each *rule* is a place where validation refuses a statement: a ``raise`` statement, and,
where the ``if`` guarding a raise tests several things with ``or``, each of those things
(``type(x) is not list or not x`` is two rules). A *mutant* is the module with one rule
removed: the ``raise`` replaced by ``pass``, or one operand of the ``or`` dropped. Every
mutant is written into a scratch copy of the project and the tests are run against it; a
mutant the tests still pass is a *survivor*: a rule no test holds in place.

    python scripts/mutate_xapi_validation.py                 # the default tests (below)
    python scripts/mutate_xapi_validation.py --list          # the rules, numbered, no tests run
    python scripts/mutate_xapi_validation.py --only 12 40    # just those mutants
    python scripts/mutate_xapi_validation.py --copy -- tests/test_xapi_data_validation.py -k sqlite

By default the tests run in a child forked from a process that has already imported them
and the project (a fresh interpreter per mutant spends most of its time importing): the
child executes the mutated module into ``adapters.xapi.validation`` and rebinds every name
other modules imported from it, so the working tree is never touched. ``--copy`` writes
each mutant into a scratch copy of the project instead and runs pytest there (slower; for
tests that start their own processes).

Exit status 1 when any mutant survives. Not collected by pytest (not under tests/, not
named test_*).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path("adapters/xapi/validation.py")
DEFAULT_TESTS = ["tests/test_xapi_validation_rules.py"]


@dataclass
class Mutant:
    number: int
    line: int
    function: str
    what: str
    source: str


def _functions(tree: ast.Module) -> dict[int, str]:
    """line -> name of the function it is in"""
    out: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                out.setdefault(line, node.name)
                if out[line] != node.name and node.lineno > 1:  # nested: the innermost wins
                    out[line] = node.name
    return out


def _ors(test: ast.expr) -> list[tuple[ast.BoolOp, int]]:
    """(an ``or``, the index of one operand) for every ``or`` in the test, nested ones too."""
    found = []
    for node in ast.walk(test):
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            found.extend((node, i) for i in range(len(node.values)))
    return found


def mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    where = _functions(tree)
    out: list[Mutant] = []
    segment = source.splitlines()

    def add(mutated: ast.Module, line: int, what: str) -> None:
        out.append(Mutant(len(out) + 1, line, where.get(line, "<module>"), what, ast.unparse(mutated)))

    raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    for target in raises:
        mutated = copy.deepcopy(tree)
        for node in ast.walk(mutated):
            for field in ("body", "orelse", "handlers", "finalbody"):
                stmts = getattr(node, field, None)
                if isinstance(stmts, list):
                    for i, stmt in enumerate(stmts):
                        if isinstance(stmt, ast.Raise) and (stmt.lineno, stmt.col_offset) == (target.lineno, target.col_offset):
                            stmts[i] = ast.copy_location(ast.Pass(), stmt)
        add(mutated, target.lineno, f"raise removed: {segment[target.lineno - 1].strip()[:100]}")

    guards = [n for n in ast.walk(tree) if isinstance(n, ast.If) and any(isinstance(s, ast.Raise) for s in n.body)]
    for guard in guards:
        for bool_op, index in _ors(guard.test):
            mutated = copy.deepcopy(tree)
            for node in ast.walk(mutated):
                if (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or)
                        and (node.lineno, node.col_offset) == (bool_op.lineno, bool_op.col_offset)):
                    dropped = node.values.pop(index)
                    break
            add(mutated, guard.lineno, f"condition dropped: `{ast.unparse(dropped)}` from `{ast.unparse(guard.test)}`"[:160])
    return out


def scratch_copy() -> Path:
    """The project's tracked files (and untracked ones not ignored) in a temporary directory."""
    dest = Path(tempfile.mkdtemp(prefix="xapi-mutants-"))
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run_tests(copy_dir: Path, tests: list[str]) -> bool:
    """True when the tests pass (the mutant survives)."""
    env = {**os.environ, "PYTHONPATH": str(copy_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    return subprocess.run(cmd, cwd=copy_dir, env=env, capture_output=True).returncode == 0


def run_forked(mutant: Mutant | None, tests: list[str]) -> bool:
    """True when the tests pass with ``mutant`` (None: the module as it is) loaded in a fork."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            import pytest

            if mutant is not None:
                import adapters.xapi.validation as module

                old = {id(v): k for k, v in vars(module).items() if callable(v)}
                exec(compile(mutant.source, str(ROOT / TARGET), "exec"), vars(module))
                for other in list(sys.modules.values()):
                    if other is None or other is module:
                        continue
                    for name, value in list(vars(other).items()):
                        if id(value) in old and callable(value):
                            setattr(other, name, vars(module)[old[id(value)]])
            devnull = os.open(os.devnull if not os.environ.get("MUTANT_DEBUG") else "/dev/stderr", os.O_WRONLY)  # MUTANT_DEBUG=1 shows the output
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = pytest.main(["-q", "-x", "-p", "no:cacheprovider", *tests])
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(int(code))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--only", type=int, nargs="*", help="run only these mutant numbers")
    parser.add_argument("--copy", action="store_true", help="run each mutant in a scratch copy of the project")
    parser.add_argument("tests", nargs="*", help=f"pytest arguments (default: {' '.join(DEFAULT_TESTS)})")
    args = parser.parse_args()
    original = (ROOT / TARGET).read_text()
    found = mutants(original)
    if args.list:
        for m in found:
            print(f"{m.number:3} line {m.line:4} {m.function}: {m.what}")
        return 0
    tests = args.tests or DEFAULT_TESTS
    chosen = [m for m in found if not args.only or m.number in args.only]
    survivors: list[Mutant] = []
    started = time.monotonic()
    work = scratch_copy() if args.copy else None
    try:
        if work is None:
            os.chdir(ROOT)
            sys.path.insert(0, str(ROOT))
            import importlib

            for name in ("pytest", "tests.conftest", "adapters.xapi.validation"):  # once here, in the parent of every fork
                importlib.import_module(name)
            passes = lambda m: run_forked(m, tests)  # noqa: E731
        else:
            def passes(m: Mutant | None) -> bool:
                (work / TARGET).write_text(m.source if m is not None else original)
                return run_tests(work, tests)
        if not passes(None):
            print("the tests fail on the unmutated code: fix them first", file=sys.stderr)
            return 2
        for m in chosen:
            survived = passes(m)
            print(f"{'SURVIVED' if survived else 'killed  '} {m.number:3} line {m.line:4} {m.function}: {m.what}", flush=True)
            if survived:
                survivors.append(m)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(chosen)} mutants, {len(chosen) - len(survivors)} killed, {len(survivors)} survived "
          f"({time.monotonic() - started:.0f} s; tests: {' '.join(tests)})")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
