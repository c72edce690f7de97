"""Ralph 5.1.0 (``ralph-malph`` on PyPI, an open-source FastAPI LRS) as a peer of
``bench/xapi_ingest.py``.

``install`` makes a virtual environment of its own under the temporary folder
(``$TMPDIR/tessera-bench-peers/ralph-5.1.0``, kept between runs) and installs
``ralph-malph[lrs]==5.1.0`` into it with pip; nothing of Ralph enters Tessera's environment.
``run`` starts Ralph's API (``ralph_server.py``: one uvicorn process, as Ralph's own
``runserver`` does, on an in-memory statement store; that module says why), with one
user of scope ``all`` in a credentials file, posts the benchmark's bodies with the
benchmark's client, and checks that every statement was stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

VERSION = "5.1.0"
HERE = Path(__file__).resolve().parent
USER, PASSWORD = "bench", "bench-secret"


def home() -> Path:
    return Path(tempfile.gettempdir()) / "tessera-bench-peers" / f"ralph-{VERSION}"


def install() -> Path:
    """The Python of Ralph's virtual environment, created and filled on first use."""
    venv = home() / "venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    print(f"  installing ralph-malph[lrs]=={VERSION} into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"ralph-malph[lrs]=={VERSION}", "requests"], check=True)
    marker.touch()
    return python


def _auth_file(python: Path, folder: Path) -> Path:
    """Ralph's credentials file: one user with every scope (the password bcrypt-hashed by
    Ralph's own bcrypt; Ralph caches a verified password, so the hash costs once)."""
    digest = subprocess.run([str(python), "-c", "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())",
                             PASSWORD], check=True, capture_output=True, text=True).stdout.strip()
    path = folder / "auth.json"
    path.write_text(f'[{{"agent": {{"mbox": "mailto:bench@example.com"}}, "scopes": ["all"], "hash": "{digest}", '
                    f'"username": "{USER}"}}]')
    return path


def _wait_up(proc: subprocess.Popen[bytes], base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ralph exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/__lbheartbeat__", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
        if time.monotonic() > deadline:
            raise TimeoutError("ralph did not come up")


def run(bodies: list[bytes], drive: Callable[..., Any]) -> Any:
    """Start Ralph, post ``bodies`` with ``drive`` (``xapi_ingest.drive``), stop it."""
    from harness import free_port  # bench/ is sys.path[0]

    python = install()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "PYTHON"))}
        env.update(RALPH_AUTH_FILE=str(_auth_file(python, folder)), RALPH_RUNSERVER_BACKEND="memory", RALPH_APP_DIR=str(folder))
        port = free_port()
        proc = subprocess.Popen([str(python), str(HERE / "ralph_server.py"), "127.0.0.1", str(port)], env=env, cwd=folder,
                                start_new_session=True, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_up(proc, base)
            out = drive(f"Ralph {VERSION} (in memory)", base, (USER, PASSWORD), bodies, proc.pid)
            # every statement stored: the last id of each body is found by GET
            n = 0
            with httpx.Client(base_url=base, auth=(USER, PASSWORD), headers={"X-Experience-API-Version": "1.0.3"}) as c:
                for body in bodies[:: max(1, len(bodies) // 20)]:
                    sid = body[body.rindex(b'{"id":"') + 7:][:36].decode()
                    n += c.get("/xAPI/statements", params={"statementId": sid}).status_code == 200
            probes = len(bodies[:: max(1, len(bodies) // 20)])
            if n != probes:
                out.errors.append(f"Ralph: {probes - n} of {probes} sampled statements not found")
            out.notes.append(f"sampled {probes} statements by id: {n} found")
            return out
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
