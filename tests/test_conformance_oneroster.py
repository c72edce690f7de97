"""The OneRoster kits: Tessera certifies itself (a real server on a free port with the bundled
demo district and an OAuth client; the CSV kit on Tessera's own ``tessera export oneroster``),
and the gradebook and CSV kits catch deliberately faulty servers and packages: for every
fault, exactly the expected checks fail (the rostering kit's faults:
``test_conformance_oneroster_faults.py``)."""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from conformance.kit import Target
from conformance.reports import write_reports
from conformance.runner import run_kit

from .conformance_oneroster_support import (
    Answer,
    Env,
    Exchange,
    Fault,
    assert_fails_exactly,
    drop_header,
    drop_param,
    kit,
    no_auth_check,
    rewrite_body,
    run_with,
    scopes_not_enforced,
    tessera,  # noqa: F401 - the fixture
    unknown_is_200,
)

pytestmark = pytest.mark.slow
GB = "/ims/oneroster/gradebook/v1p2"


@pytest.fixture(scope="module")
def export(tessera: Env, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """``tessera export oneroster`` of the demo district (before any kit writes)."""
    from gateway.cli import app, register_adapters

    register_adapters()
    path = tmp_path_factory.mktemp("export") / "export.zip"
    res = CliRunner().invoke(app, ["--database-url", tessera.db_url, "export", "oneroster", str(path), "--tenant", "demo"])
    assert res.exit_code == 0, res.output
    return path


# --- self-certification ----------------------------------------------------------------------


def test_tessera_passes_every_oneroster_kit(tessera: Env, export: Path, tmp_path: Path,  # noqa: F811
                                            capsys: pytest.CaptureFixture[str]) -> None:
    csv_run = run_kit(kit("oneroster-csv-1.2"), Target("", options={"package": str(export)}), report_dir=tmp_path / "csv")
    write_reports(csv_run, tmp_path / "csv")
    assert [(r.check.id, r.reason) for r in csv_run.required_failures] == [] and csv_run.exit_code == 0
    assert len(csv_run.results) >= 40 and csv_run.count("pass") >= 40
    log = (tmp_path / "csv" / "csv-import-log.txt").read_text()
    assert "users.csv: IMPORTED (bulk, 298 rows, 0 errors" in log and "manifest.csv: IMPORTED" in log
    assert "REJECTED" not in log

    ros = run_kit(kit("oneroster-rostering-1.2"), tessera.target())
    assert [(r.check.id, r.reason) for r in ros.results if r.status == "fail"] == []
    assert [r.check.id for r in ros.results if r.status == "skip"] == []
    assert len(ros.results) >= 50 and ros.seconds < 30

    gb = run_kit(kit("oneroster-gradebook-1.2"), tessera.target())
    assert [(r.check.id, r.reason) for r in gb.results if r.status != "pass"] == []
    assert len(gb.results) >= 30 and gb.teardown_error is None
    # the teardown deleted what the kit wrote (OneRoster deletes softly: tobedeleted)
    with httpx.Client(base_url=tessera.base, headers={"Authorization": f"Bearer {tessera.faulty.token}"}) as c:
        written = c.get(f"{GB}/lineItems", params={"filter": "sourcedId~'conformance-'", "limit": 1000}).json()["lineItems"]
    assert written and {o["status"] for o in written} == {"tobedeleted"}
    # no secret and no token in any report, though the kits asked for tokens and sent one in a query string
    for name, run in (("ros", ros), ("gb", gb)):
        for path in write_reports(run, tmp_path / name).values():
            text = path.read_text()
            assert tessera.secret not in text and "eyJ" not in text, path
    with capsys.disabled():
        print(f"\n[conformance] against Tessera: oneroster-rostering-1.2 {len(ros.results)} checks in {ros.seconds:.2f} s, "
              f"gradebook {len(gb.results)} in {gb.seconds:.2f} s, csv {len(csv_run.results)} in {csv_run.seconds:.2f} s")


def test_wrong_credentials_fail_every_check_with_the_reason_and_no_secret_in_the_reports(tessera: Env, tmp_path: Path) -> None:  # noqa: F811
    target = Target(tessera.base, client_id=tessera.client_id, client_secret="conformance-wrong-secret")
    run = run_kit(kit("oneroster-rostering-1.2"), target)
    assert {r.status for r in run.results} == {"fail"} and run.exit_code == 1
    assert run.results[0].reason.startswith("setup failed: the token endpoint ") and "HTTP 401" in run.results[0].reason
    paths = write_reports(run, tmp_path)
    for p in paths.values():
        text = p.read_text()
        assert "conformance-wrong-secret" not in text and tessera.secret not in text


# --- faults: gradebook -----------------------------------------------------------------------


def put_always_creates(env: Env) -> Fault:
    """A PUT naming an existing sourcedId creates another object (PUT not idempotent)."""
    seen: set[str] = set()
    n = itertools.count()

    def request(ex: Exchange) -> None:
        if ex.method == "PUT" and ex.path.startswith(GB):
            if ex.path in seen:
                dup = f"-dup{next(n)}"
                data = orjson.loads(ex.body)
                for obj in data.values():
                    obj["sourcedId"] += dup
                ex.path += dup
                ex.body = orjson.dumps(data)
            seen.add(ex.path)
    return Fault(request=request)


def put_update_ignored(env: Env) -> Fault:
    """A PUT naming an existing sourcedId answers 200 and changes nothing."""
    seen: set[str] = set()

    def request(ex: Exchange) -> Answer | None:
        if ex.method == "PUT" and ex.path.startswith(GB):
            if ex.path in seen:
                return Answer(200, {"content-type": "application/json"}, ex.body)
            seen.add(ex.path)
        return None
    return Fault(request=request)


def delete_ignored(ex: Exchange) -> Answer | None:
    return Answer(204, {}, b"") if ex.method == "DELETE" and ex.path.startswith(GB) else None


def invalid_accepted(ex: Exchange, a: Answer) -> None:
    if ex.method == "PUT" and a.status == 400:
        a.status = 201
        a.set_json({"lineItem": {}})


def nested_unfiltered(ex: Exchange) -> None:
    if ex.method == "GET" and ex.path.startswith(f"{GB}/classes/") and ex.path.endswith("/lineItems"):
        ex.path = f"{GB}/lineItems"


def score_dropped(ex: Exchange, a: Answer) -> None:
    if ex.method == "GET" and "/results" in ex.path and a.status == 200:
        data = a.json()
        for obj in (data.get("results") or [data.get("result") or {}]):
            obj.pop("score", None)
        a.set_json(data)


def gb(*short: str) -> set[str]:
    return {f"OR-GB-{s}" for s in short}


GRADEBOOK_FAULTS: dict[str, tuple[Callable[[Env], Fault], set[str]]] = {
    "PUT not idempotent (a repeated PUT creates another object)": (put_always_creates,
        gb("CAT-004", "LI-003", "LI-004", "RES-003", "RES-004")),
    "PUT of an existing object ignored": (put_update_ignored,
        gb("CAT-004", "LI-004", "RES-004")),
    "DELETE ignored": (lambda e: Fault(request=delete_ignored),
        gb("AUTH-003", "DEL-001", "DEL-002", "DEL-003", "DEL-004", "DEL-005")),
    "invalid objects accepted": (lambda e: Fault(response=invalid_accepted),
        gb("ERR-003", "LI-006", "LI-007", "RES-009")),
    "no 401 without a token": (no_auth_check,
        gb("AUTH-001")),
    "scopes not enforced": (scopes_not_enforced,
        gb("AUTH-002", "AUTH-003", "AUTH-004", "DEL-005")),
    "200 for an unknown sourcedId": (lambda e: Fault(response=unknown_is_200),
        gb("AUTH-002", "ERR-001", "ERR-002", "ERR-004")),
    "wrong codeMinor (invaliddata for unknownobject)": (lambda e: rewrite_body(b'"unknownobject"', b'"invaliddata"'),
        gb("DEL-004", "ERR-001", "ERR-002", "ERR-004")),
    "no X-Total-Count": (lambda e: drop_header("x-total-count", lambda ex: ex.path.startswith(GB)),
        gb("LI-003", "LI-008", "READ-001", "READ-002", "READ-003", "READ-004", "READ-005", "READ-006", "RES-010")),
    "filter ignored": (lambda e: drop_param("filter", lambda ex: ex.path.startswith(GB)),
        gb("AR-002", "CAT-003", "LI-003", "LI-008")),
    "class line items unfiltered": (lambda e: Fault(request=nested_unfiltered),
        gb("ERR-002", "LI-005")),
    "results without their score": (lambda e: Fault(response=score_dropped),
        gb("POST-002", "RES-002", "RES-003", "RES-004")),
}


@pytest.mark.parametrize("name", list(GRADEBOOK_FAULTS))
def test_the_gradebook_kit_catches_a_faulty_provider(tessera: Env, name: str) -> None:  # noqa: F811
    make, expected = GRADEBOOK_FAULTS[name]
    run = run_with(tessera, "oneroster-gradebook-1.2", make(tessera))
    assert_fails_exactly(run, expected)


# --- faults: CSV packages --------------------------------------------------------------------


def read_zip(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n).decode("utf-8") for n in z.namelist()}


def write_zip(files: dict[str, str | bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
    return path


def replace_line(files: dict[str, str], name: str, index: int, edit: Callable[[list[str]], list[str]]) -> None:
    """Edit line ``index`` (0 = the header) of a CSV file whose cells hold no commas or quotes."""
    lines = files[name].split("\n")
    lines[index] = ",".join(edit(lines[index].split(",")))
    files[name] = "\n".join(lines)


def cell(files: dict[str, str], name: str, row: int, column: str, value: str) -> None:
    header = files[name].split("\n", 1)[0].strip().split(",")

    def edit(cells: list[str]) -> list[str]:
        cells[header.index(column)] = value
        return cells
    replace_line(files, name, row - 1, edit)


def no_manifest(f: dict[str, str | bytes]) -> None:
    del f["manifest.csv"]


def mutate(fn: Callable[[dict[str, str]], None]) -> Callable[[dict[str, str | bytes]], None]:
    return fn  # type: ignore[return-value]


CSV_FAULTS: dict[str, tuple[Callable[[dict[str, str | bytes]], None], set[str]]] = {
    "no manifest": (no_manifest, {"OR-CSV-MAN-001"}),
    "oneroster.version 1.1": (mutate(lambda f: f.__setitem__("manifest.csv", f["manifest.csv"].replace("oneroster.version,1.2",
                                                                                                        "oneroster.version,1.1"))), {"OR-CSV-MAN-004"}),
    "a header column renamed": (mutate(lambda f: replace_line(f, "users.csv", 0, lambda c: ["firstName" if x == "givenName" else x
                                                                                           for x in c])), {"OR-CSV-HDR-002"}),
    "a sourcedId given twice": (mutate(lambda f: f.__setitem__("orgs.csv", f["orgs.csv"].rstrip("\r\n") + "\r\n"
                                                               + f["orgs.csv"].splitlines()[1] + "\r\n")), {"OR-CSV-ROW-002"}),
    "an org type outside the vocabulary": (mutate(lambda f: cell(f, "orgs.csv", 2, "type", "campus")), {"OR-CSV-ENUM-001"}),
    "an enrollment of a user the package lacks": (mutate(lambda f: cell(f, "enrollments.csv", 2, "userSourcedId", "nobody")), {"OR-CSV-REF-005"}),
    "an impossible date": (mutate(lambda f: cell(f, "academicSessions.csv", 2, "startDate", "2026-13-01")), {"OR-CSV-ROW-006"}),
    "a boolean spelled yes": (mutate(lambda f: cell(f, "users.csv", 2, "enabledUser", "yes")), {"OR-CSV-ROW-008"}),
    "a delta file without status": (mutate(lambda f: (f.__setitem__("manifest.csv", f["manifest.csv"].replace("file.orgs,bulk", "file.orgs,delta")),
                                                       cell(f, "orgs.csv", 2, "status", ""))), {"OR-CSV-MODE-001"}),
    "a declared file missing": (lambda f: f.pop("categories.csv"), {"OR-CSV-MAN-006"}),
    "an undeclared file": (lambda f: f.__setitem__("courseResources.csv",
                                                   "sourcedId,status,dateLastModified,title,courseSourcedId,resourceSourcedId\r\n"), {"OR-CSV-MAN-007"}),
    "a file that is not UTF-8": (lambda f: f.__setitem__("users.csv", f["users.csv"].encode("utf-8") + b"x,\xe9\r\n"), {"OR-CSV-PKG-002"}),
    "a user without a role": (mutate(lambda f: f.__setitem__("roles.csv", "\n".join(
        line for i, line in enumerate(f["roles.csv"].split("\n")) if i != 1))), {"OR-CSV-SEM-005"}),
    "a short row": (mutate(lambda f: replace_line(f, "courses.csv", 1, lambda c: c[:-2])), {"OR-CSV-ROW-001"}),
}


@pytest.mark.parametrize("name", list(CSV_FAULTS))
def test_the_csv_kit_catches_a_broken_package(export: Path, tmp_path: Path, name: str) -> None:
    breaks, expected = CSV_FAULTS[name]
    files: dict[str, str | bytes] = dict(read_zip(export))
    breaks(files)
    package = write_zip(files, tmp_path / "broken.zip")
    run = run_kit(kit("oneroster-csv-1.2"), Target("", options={"package": str(package)}), report_dir=tmp_path)
    required = {r.check.id for r in run.required_failures}
    assert sorted(required) == sorted(expected), {r.check.id: r.reason[:200] for r in run.results if r.check.id in required ^ expected}
    assert run.exit_code == 1
    log = orjson.loads((tmp_path / "csv-import-log.json").read_bytes())
    assert any(f["outcome"] == "rejected" for f in log["files"]) or log["package_errors"]


def test_the_cli_runs_a_kit_against_tessera(tessera: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from conformance.cli import conformance_app

    monkeypatch.setenv("CONFORMANCE_TEST_SECRET", tessera.secret)
    res = CliRunner().invoke(conformance_app, [
        "run", "oneroster-gradebook-1.2", "--base-url", tessera.base, "--client-id", tessera.client_id,
        "--client-secret-env", "CONFORMANCE_TEST_SECRET", "--grep", "^OR-GB-(READ|AUTH-00[15])", "--skip", "OR-GB-READ-006,OR-GB-READ-005",
        "--report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "warning: this kit writes test records to the target" in res.output and "PASSED" in res.output
    data = orjson.loads((tmp_path / "report.json").read_bytes())
    assert data["counts"] == {"total": 8, "pass": 6, "fail": 0, "skip": 2, "required_failed": 0, "not_selected": 45}
    assert (tmp_path / "junit.xml").exists() and (tmp_path / "report.html").exists()
    assert tessera.secret not in res.output
