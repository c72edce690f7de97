"""The reports of a run: JSON, JUnit XML and one self-contained HTML page.

* ``report.json``: everything (kit, target URL, time, counts, the rollups, every check with
  its result, reason and exchanges);
* ``junit.xml``: one ``testsuite`` per kit, one ``testcase`` per check (``classname`` the
  kit and requirement), ``failure`` / ``skipped`` elements carrying the reason and, for a
  failure, the exchanges behind it: what a vendor's CI (GitLab, Jenkins, GitHub actions'
  test reporters) shows. An optional (SHOULD) check that fails is a passing testcase with
  the reason in ``system-out``, as it does not fail the run;
* ``report.html``: one page, inline CSS, no script, no external asset: the summary, the
  must-pass-all rollup per requirement, every failure with its request and an excerpt of
  its response, then every check. Everything from the target is escaped.

Credentials never reach a report: ``Session`` hides authorization headers when it records
an exchange, and the target is shown by its base URL only.
"""

from __future__ import annotations

import html
import json
import socket
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from .kit import Exchange, Result
from .runner import Rollup, Run

JSON_NAME, JUNIT_NAME, HTML_NAME = "report.json", "junit.xml", "report.html"


def _exchange(e: Exchange) -> dict[str, Any]:
    return {"method": e.method, "url": e.url, "request_headers": e.request_headers, "request_body": e.request_body,
            "status": e.status, "response_headers": e.response_headers, "response_body": e.response_body, "error": e.error}


def _rollup(r: Rollup) -> dict[str, Any]:
    return {"name": r.name, "status": r.status, "checks": r.checks, "failed": r.failed, "optional_failed": r.optional_failed}


def as_dict(run: Run) -> dict[str, Any]:
    return {
        "kit": run.kit.name, "title": run.kit.title, "spec": run.kit.spec, "target": run.target.base_url or None,
        "started_at": run.started_at.isoformat(), "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "seconds": round(run.seconds, 3),
        "counts": {"total": len(run.results), "pass": run.count("pass"), "fail": run.count("fail"), "skip": run.count("skip"),
                   "required_failed": len(run.required_failures), "not_selected": run.not_selected},
        "exit_code": run.exit_code, "setup_error": run.setup_error, "teardown_error": run.teardown_error,
        "artifacts": run.artifacts,
        "rollup": {"requirements": [_rollup(r) for r in run.rollup()], "requirement_ids": [_rollup(r) for r in run.rollup_ids()]},
        "checks": [{
            "id": r.check.id, "requirement": r.check.requirement, "requirement_ids": list(r.check.requirement_ids),
            "description": r.check.description, "required": r.check.required, "status": r.status, "reason": r.reason,
            "seconds": round(r.seconds, 4), "exchanges": [_exchange(e) for e in r.exchanges],
        } for r in run.results],
    }


def _exchange_text(e: Exchange) -> str:
    lines = [f"> {e.method} {e.url}"]
    lines += [f"> {k}: {v}" for k, v in e.request_headers.items()]
    if e.request_body:
        lines += ["", e.request_body]
    if e.error:
        lines.append(f"< no answer: {e.error}")
    else:
        lines.append(f"< HTTP {e.status}")
        lines += [f"< {k}: {v}" for k, v in e.response_headers.items()]
        if e.response_body:
            lines += ["", e.response_body]
    return "\n".join(lines)


_XML_BAD = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)], None)


def _x(text: str) -> str:
    """Text an XML document can hold (control characters a server sent are dropped)."""
    return text.translate(_XML_BAD)


def junit(run: Run) -> bytes:
    suites = etree.Element("testsuites", name=f"tessera conformance {run.kit.name}")
    suite = etree.SubElement(
        suites, "testsuite", name=run.kit.name, tests=str(len(run.results)), failures=str(len(run.required_failures)),
        errors="0", skipped=str(run.count("skip")), time=f"{run.seconds:.3f}",
        timestamp=run.started_at.replace(tzinfo=None).isoformat(timespec="seconds"), hostname=socket.gethostname())
    props = etree.SubElement(suite, "properties")
    for name, value in (("spec", run.kit.spec), ("target", run.target.base_url or "(offline)"), ("title", run.kit.title)):
        etree.SubElement(props, "property", name=name, value=_x(value))
    for r in run.results:
        case = etree.SubElement(suite, "testcase", classname=_x(f"{run.kit.name}.{r.check.requirement}"),
                                name=_x(f"{r.check.id}: {r.check.description}"), time=f"{r.seconds:.3f}")
        if r.status == "fail" and r.check.required:
            fail = etree.SubElement(case, "failure", message=_x(r.reason[:1000]), type="fail")
            fail.text = _x("\n\n".join([r.reason, *(_exchange_text(e) for e in r.exchanges[-5:])]))
        elif r.status == "fail":
            out = etree.SubElement(case, "system-out")
            out.text = _x(f"optional check failed (does not fail the run): {r.reason}")
        elif r.status == "skip":
            etree.SubElement(case, "skipped", message=_x(r.reason[:1000]))
    if run.setup_error or run.teardown_error:
        err = etree.SubElement(suite, "system-err")
        err.text = _x("\n".join(x for x in (run.setup_error, run.teardown_error) if x))
    return etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#1d2330;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d5d9e0;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{background:#f3f5f8}.pass{color:#17692e;font-weight:600}.fail{color:#b3261e;font-weight:600}.skip{color:#7a6200;font-weight:600}
.summary span{display:inline-block;margin-right:1.5em;font-size:1.1em}.verdict{font-size:1.3em;padding:.4em .8em;border-radius:4px;display:inline-block}
.verdict.pass{background:#e3f4e8}.verdict.fail{background:#fbe6e4}
pre{background:#f6f7f9;border:1px solid #e1e4e8;padding:.6em;overflow:auto;max-height:24em;white-space:pre-wrap;word-break:break-all;font-size:12px}
.failure{border-left:4px solid #b3261e;padding:.2em 1em;margin:1em 0;background:#fffafa}.muted{color:#667085}code{font-size:.95em}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _status(s: str) -> str:
    return f'<span class="{_e(s)}">{_e(s.upper())}</span>'


def _rollup_rows(rows: list[Rollup]) -> str:
    return "".join(
        f"<tr><td>{_e(r.name)}</td><td>{_status(r.status)}</td><td>{len(r.checks)}</td>"
        f"<td>{_e(', '.join(r.failed))}{(' <span class=muted>(optional: ' + _e(', '.join(r.optional_failed)) + ')</span>') if r.optional_failed else ''}</td></tr>"
        for r in rows)


def _failure(r: Result) -> str:
    ex = "".join(f"<pre>{_e(_exchange_text(e))}</pre>" for e in r.exchanges[-5:]) or '<p class="muted">no request was made</p>'
    opt = "" if r.check.required else ' <span class="muted">(optional: does not fail the run)</span>'
    return (f'<div class="failure" id="{_e(r.check.id)}"><h3><code>{_e(r.check.id)}</code> {_e(r.check.description)}{opt}</h3>'
            f"<p><b>Requirement:</b> {_e(r.check.requirement)}"
            f"{(' (' + _e(', '.join(r.check.requirement_ids)) + ')') if r.check.requirement_ids else ''}</p>"
            f"<p><b>Reason:</b> {_e(r.reason)}</p>{ex}</div>")


def html_report(run: Run) -> str:
    verdict = "fail" if run.exit_code else "pass"
    when = run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    failures = [r for r in run.results if r.status == "fail"]
    notes = "".join(f'<p class="fail">{_e(x)}</p>' for x in (run.setup_error, run.teardown_error) if x)
    ids = run.rollup_ids()
    rows = "".join(
        f'<tr><td><code>{_e(r.check.id)}</code></td><td>{_e(r.check.description)}</td><td>{_e(r.check.requirement)}</td>'
        f'<td>{_status(r.status)}{"" if r.check.required else " <span class=muted>(optional)</span>"}</td>'
        f"<td>{_e(r.reason)}</td><td>{r.seconds:.2f}s</td></tr>" for r in run.results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(run.kit.name)} conformance report</title><style>{_CSS}</style></head><body>
<h1>{_e(run.kit.title)} <span class="muted">({_e(run.kit.name)})</span></h1>
<p>{_e(run.kit.spec)} &middot; target <code>{_e(run.target.base_url or "(offline)")}</code> &middot; run {_e(when)} &middot; took {run.seconds:.1f} s</p>
<p class="verdict {verdict}">{"PASSED: no required check failed" if verdict == "pass" else f"FAILED: {len(run.required_failures)} required check(s) failed"}</p>
<p class="summary"><span>{len(run.results)} checks</span><span class="pass">{run.count("pass")} passed</span>
<span class="fail">{run.count("fail")} failed</span><span class="skip">{run.count("skip")} skipped</span>
{f'<span class="muted">{run.not_selected} not selected</span>' if run.not_selected else ""}</p>{notes}
{"".join(f"<p>Also written: <code>{_e(Path(a).name)}</code></p>" for a in run.artifacts)}
<h2>Requirements (must pass all)</h2>
<table><tr><th>Requirement</th><th>Result</th><th>Checks</th><th>Failed</th></tr>{_rollup_rows(run.rollup())}</table>
{f'<h2>Requirement ids</h2><table><tr><th>Id</th><th>Result</th><th>Checks</th><th>Failed</th></tr>{_rollup_rows(ids)}</table>' if ids else ""}
<h2>Failures ({len(failures)})</h2>{"".join(_failure(r) for r in failures) or "<p>None.</p>"}
<h2>Every check</h2>
<table><tr><th>Id</th><th>Description</th><th>Requirement</th><th>Result</th><th>Reason</th><th>Time</th></tr>{rows}</table>
<p class="muted">Tessera conformance kit {_e(run.kit.name)}; report written {_e(when)}; run time {run.seconds:.2f} s.</p>
</body></html>
"""


def write_reports(run: Run, directory: Path | str) -> dict[str, Path]:
    """Write the three reports into ``directory`` (created); their paths by format."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": d / JSON_NAME, "junit": d / JUNIT_NAME, "html": d / HTML_NAME}
    paths["json"].write_text(json.dumps(as_dict(run), indent=2, ensure_ascii=False), encoding="utf-8")
    paths["junit"].write_bytes(junit(run))
    paths["html"].write_text(html_report(run), encoding="utf-8")
    return paths


__all__ = ["HTML_NAME", "JSON_NAME", "JUNIT_NAME", "as_dict", "html_report", "junit", "write_reports"]
