"""A real ``tessera serve`` on a free port, for the tests, the benchmarks and the scripts that
need one: pick a port, start the process, wait until it answers, stop it.

Tooling, not the gateway: nothing the gateway runs imports this module, and it imports nothing
of the gateway (so ``scripts/`` and ``bench/`` use it without pytest or a store)::

    with serving(env, cwd=tmp) as server:      # `tessera serve --port N`, /readyz answered 200
        httpx.get(server.base_url + "/v1/people")
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tessera_exe() -> str:
    """The ``tessera`` console script next to this Python (the virtualenv's), else the PATH's."""
    return shutil.which("tessera", path=str(Path(sys.executable).parent)) or "tessera"


def wait_until_answers(proc: subprocess.Popen[bytes], url: str, *, what: str = "the server", timeout: float = 60,
                       log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200. Raises ``RuntimeError`` (with the tail of ``log``
    when given) if ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.returncode is not None else f"did not answer in {timeout:.0f} s"
            tail = log.read_text(errors="replace")[-5000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{what} did not start ({why}):\n{tail}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Ask ``proc`` to stop (SIGTERM); kill it if it has not stopped in ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Server:
    """A started ``tessera serve``: its process, its base URL and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        stop(self.proc, timeout)


def start(env: Mapping[str, str], cwd: Path, *, args: Sequence[str] = (), ready: str = "/readyz", timeout: float = 60,
          what: str = "the server") -> Server:
    """``tessera serve --port N [args]`` in ``cwd`` with ``env``, its output in ``cwd/server.log``;
    returns once ``ready`` answers 200. A server that exits or does not answer in ``timeout``
    seconds is killed and ``RuntimeError`` names it with its log."""
    port = free_port()
    log_path = cwd / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([tessera_exe(), "serve", "--port", str(port), *args], env=dict(env), cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_answers(proc, server.base_url + ready, what=what, timeout=timeout, log=log_path)
    except BaseException:
        stop(proc, timeout=5)
        raise
    return server


@contextmanager
def serving(env: Mapping[str, str], cwd: Path, *, args: Sequence[str] = (), ready: str = "/readyz", timeout: float = 60,
            what: str = "the server") -> Iterator[Server]:
    """:func:`start`, and :meth:`Server.stop` on the way out."""
    server = start(env, cwd, args=args, ready=ready, timeout=timeout, what=what)
    try:
        yield server
    finally:
        server.stop()
