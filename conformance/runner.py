"""Running a kit against a target: every check, its result, the rollup, the exit code.

``run_kit(kit, target, ...)`` builds the kit's HTTP client (``kit.client(target)``, or plain
httpx with the target's base URL and timeout), runs ``kit.setup`` once, then each selected
check with a fresh ``Session`` sharing one ``state`` dict, then ``kit.teardown``. It never
raises for anything the target does:

* a check passes by returning; ``Fail``, ``Skip`` and ``AssertionError`` give fail / skip
  with their message; any other exception is a failure naming it (``KeyError: 'users'``);
* a setup that fails (or skips) makes every selected check report it, with the setup's
  exchanges; a client that cannot be built does the same;
* each check runs in a worker thread with a deadline (``check_timeout``, default twelve
  request timeouts and at least 120 s): a server that accepts a connection and never
  answers is cut by the client's own timeout, and a check that still does not finish (a
  server trickling its answer) is reported as failed and left behind;
* after ``NO_ANSWER_LIMIT`` checks in a row whose every request got no answer at all
  (connection refused, timeouts) or that did not finish, the remaining checks fail at once
  with that reason instead of each waiting for its own timeouts;
* ``--grep`` selects checks by id or description (a regular expression, case-insensitive),
  ``--skip ID`` skips checks by id (reported as skipped), ``--bail`` stops after the first
  required check that fails (the rest are reported as skipped).

The rollup is must-pass-all: a requirement (and a published requirement id) passes only
when every required check enforcing it passes. The exit code is 0 only when no required
check failed (``Run.exit_code``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from .kit import Check, Exchange, Fail, Kit, Result, Session, Skip, Status, Target

#: consecutive checks with no answer to any of their requests before the rest are not run
NO_ANSWER_LIMIT = 3


@dataclass
class Rollup:
    """One requirement (or requirement id) and the checks enforcing it."""

    name: str
    status: str  # pass | fail | skip
    checks: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: failures of optional (SHOULD) checks: reported, not failing the requirement
    optional_failed: list[str] = field(default_factory=list)


@dataclass
class Run:
    kit: Kit
    target: Target
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float = 0.0
    results: list[Result] = field(default_factory=list)
    #: checks left out by --grep
    not_selected: int = 0
    setup_error: str | None = None
    teardown_error: str | None = None
    #: files a kit wrote beside the reports (the CSV kit's import log)
    artifacts: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def required_failures(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail" and r.check.required]

    @property
    def exit_code(self) -> int:
        return 1 if self.required_failures else 0

    def rollup(self) -> list[Rollup]:
        """Must-pass-all per requirement (the spec section), in the kit's order."""
        return _rollup(self.results, lambda r: [r.check.requirement])

    def rollup_ids(self) -> list[Rollup]:
        """Must-pass-all per published requirement id (``XAPI-00123``), where checks name one."""
        return _rollup(self.results, lambda r: list(r.check.requirement_ids))


def _rollup(results: Iterable[Result], keys: Callable[[Result], list[str]]) -> list[Rollup]:
    out: dict[str, Rollup] = {}
    for r in results:
        for key in keys(r):
            roll = out.setdefault(key, Rollup(key, "skip"))
            roll.checks.append(r.check.id)
            if r.status == "fail":
                (roll.failed if r.check.required else roll.optional_failed).append(r.check.id)
    for roll in out.values():
        statuses = {res.status for res in results if res.check.id in roll.checks}
        roll.status = "fail" if roll.failed else ("pass" if "pass" in statuses or roll.optional_failed else "skip")
    return list(out.values())


def select(kit: Kit, grep: str | None = None) -> list[Check]:
    """The checks ``--grep`` selects (id or description, case-insensitive regular expression;
    a pattern that is not a valid expression is matched as plain text)."""
    if not grep:
        return list(kit.checks)
    try:
        rx = re.compile(grep, re.IGNORECASE)
    except re.error:
        rx = re.compile(re.escape(grep), re.IGNORECASE)
    return [c for c in kit.checks if rx.search(c.id) or rx.search(c.description)]


def default_client(target: Target) -> httpx.Client:
    return httpx.Client(base_url=target.base_url or "", timeout=target.timeout, follow_redirects=False)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call(fn: Callable[[Session], None], session: Session, deadline: float) -> tuple[Status, str]:
    """Run ``fn(session)`` in a worker thread; (status, reason)."""
    outcome: dict[str, tuple[Status, str]] = {}

    def work() -> None:
        try:
            fn(session)
            outcome["r"] = ("pass", "")
        except Skip as exc:
            outcome["r"] = ("skip", str(exc) or "skipped")
        except Fail as exc:
            outcome["r"] = ("fail", str(exc) or "failed")
        except AssertionError as exc:
            outcome["r"] = ("fail", str(exc) or "assertion failed")
        except BaseException as exc:  # noqa: BLE001 - a broken server or kit never crashes the run
            outcome["r"] = ("fail", f"unexpected {_describe(exc)}")

    worker = threading.Thread(target=work, name="conformance-check", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return "fail", f"did not finish within {deadline:g} s (the target hangs?)"
    return outcome.get("r", ("fail", "the check ended without a result"))


def _no_answer(exchanges: list[Exchange]) -> str | None:
    """The last transport error when every request of a check got no answer."""
    if exchanges and all(e.status is None and e.error for e in exchanges):
        return exchanges[-1].error
    return None


def run_kit(
    kit: Kit,
    target: Target,
    *,
    grep: str | None = None,
    skip: Iterable[str] = (),
    bail: bool = False,
    report_dir: Path | str | None = None,
    check_timeout: float | None = None,
    on_start: Callable[[Check], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> Run:
    """Run the selected checks of ``kit`` against ``target``; never raises for the target's faults."""
    started = time.perf_counter()
    run = Run(kit, target, datetime.now(UTC))
    checks = select(kit, grep)
    run.not_selected = len(kit.checks) - len(checks)
    skipped = set(skip)
    deadline = check_timeout if check_timeout is not None else max(120.0, target.timeout * 12)
    state: dict[str, Any] = {"artifacts": run.artifacts}
    if report_dir is not None:
        state["report_dir"] = Path(report_dir)

    def record(result: Result) -> None:
        run.results.append(result)
        if on_result is not None:
            on_result(result)

    client: httpx.Client | None = None
    try:
        client = (kit.client or default_client)(target)
    except Exception as exc:  # noqa: BLE001
        run.setup_error = f"could not build the HTTP client: {_describe(exc)}"

    setup_exchanges: list[Exchange] = []
    setup_status: Status = "pass"
    if client is not None and kit.setup is not None:
        session = Session(target, client, state)
        setup_status, reason = _call(kit.setup, session, deadline)
        setup_exchanges = session.exchanges
        if setup_status != "pass":
            run.setup_error = f"setup {'skipped' if setup_status == 'skip' else 'failed'}: {reason}"
    elif client is None:
        setup_status = "fail"

    stop_reason: str | None = None
    silent: list[str] = []
    for check in checks:
        if on_start is not None:
            on_start(check)
        t0 = time.perf_counter()
        if check.id in skipped:
            record(Result(check, "skip", "skipped on request (--skip)"))
            continue
        if setup_status != "pass":
            record(Result(check, "skip" if setup_status == "skip" else "fail", run.setup_error or "", 0.0, list(setup_exchanges)))
            continue
        if stop_reason is not None:
            record(Result(check, "skip" if stop_reason.startswith("not run: --bail") else "fail", stop_reason))
            continue
        assert client is not None
        session = Session(target, client, state)
        status, reason = _call(check.run, session, deadline)
        result = Result(check, status, reason, time.perf_counter() - t0, session.exchanges)
        record(result)
        if status == "fail" and check.required and bail:
            stop_reason = f"not run: --bail after {check.id} failed"
        no_answer = (reason if reason.startswith("did not finish") else _no_answer(session.exchanges)) if status == "fail" else None
        silent = [*silent, no_answer] if no_answer else []
        if len(silent) >= NO_ANSWER_LIMIT and stop_reason is None:
            stop_reason = f"not run: the target gave no answer to the {NO_ANSWER_LIMIT} checks before (last: {silent[-1]})"

    if client is not None:
        if kit.teardown is not None and setup_status == "pass":
            status, reason = _call(kit.teardown, Session(target, client, state), deadline)
            if status != "pass":
                run.teardown_error = f"teardown {status}: {reason}"
        try:
            client.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection is not the target's result
            pass
    run.finished_at = datetime.now(UTC)
    run.seconds = time.perf_counter() - started
    return run


__all__ = ["NO_ANSWER_LIMIT", "Rollup", "Run", "default_client", "run_kit", "select"]
