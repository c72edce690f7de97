"""Shared fixtures: every store-backed test runs on SQLite AND on PostgreSQL.

Stores are opened through the composition root (``gateway.wiring.open_store``): every
installed adapter's migrations, the mastery engine listening to evidence.

PostgreSQL comes from ``TESSERA_TEST_POSTGRES_URL`` (``.ci/run`` starts a throwaway
server and sets it). Without it the PostgreSQL half is skipped, unless
``TESSERA_REQUIRE_POSTGRES=1`` (as in CI), where a missing server is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx._config as _httpx_config
import httpx._transports.default as _httpx_transports
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text

from gateway.auth import ClientStore
from gateway.auth import clients as _auth_clients
from gateway.auth import keys as _auth_keys
from gateway.config import Settings
from gateway.devserver import free_port
from gateway.store import Store
from gateway.wiring import default as default_wiring
from gateway.wiring import open_store

#: Hypothesis profiles. "ci" (loaded when ``TESSERA_HYPOTHESIS_PROFILE=ci``, as ``.ci/run``
#: sets it, or ``CI=1``): the same examples on every run (``derandomize``), so that a run is
#: reproducible and a planted fault is caught by every run or by none; enough of them for the
#: mastery property tests to catch the fault planted for issue 21 (measured: docs/testing.md). A
#: test's own ``@settings(max_examples=...)`` still wins over the profile's.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, max_examples=150, deadline=None, print_blob=True)
_PROFILE = os.environ.get("TESSERA_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "1" else None)
if _PROFILE:
    hypothesis_settings.load_profile(_PROFILE)


# --- a run stopped from outside says where every test process was ------------------------------
# ``.ci/run`` caps the whole run (``timeout -s INT``): the signal reaches the controller and
# every pytest-xdist worker, and each prints every thread's stack before it stops, so a run cut
# short names the tests that were still running and where they waited. (A test that hangs is
# already failed with its stacks after ``timeout`` seconds, pyproject.toml; this is for the rest.)


@pytest.hookimpl(trylast=True)  # after pytest's faulthandler plugin has kept the real stderr
def pytest_configure(config: pytest.Config) -> None:
    import faulthandler
    import signal

    try:  # the real stderr, kept by pytest's faulthandler plugin before output was captured
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        fd = config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        faulthandler.register(sig, file=fd, all_threads=True, chain=True)


# --- one TLS trust store per test process ------------------------------------------------------
# Every ``httpx.Client`` (each test's clients, and each app's outbound clients: three per
# ``create_app``) built a fresh ``ssl.SSLContext`` and loaded certifi's CA bundle into it:
# 30-40 ms of CPU each on an idle core, several per test, minutes per CI run. No test makes
# a TLS connection (every server under test listens on plain HTTP on 127.0.0.1; remote peers
# are respx mocks), so the default verifying context is built once and shared; any other
# ``verify``/``cert`` still gets its own.
_httpx_create_ssl_context = _httpx_transports.create_ssl_context


@functools.cache
def _default_ssl_context(trust_env: bool, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    return _httpx_create_ssl_context(verify=True, trust_env=trust_env)


def _shared_ssl_context(verify: object = True, cert: object = None, trust_env: bool = True) -> ssl.SSLContext:
    if verify is True and cert is None:
        return _default_ssl_context(trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    return _httpx_create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]


_httpx_transports.create_ssl_context = _shared_ssl_context  # type: ignore[assignment]


# --- the tests' own HTTP requests wait as long as a loaded machine needs ---------------------------
# httpx waits 5 s by default (connect, read, write, pool); the tests' own ``httpx.get/post``
# and ``httpx.Client`` calls without a timeout of their own (about 80) failed with ReadTimeout
# when a loaded 2-core CI machine took longer to answer (seen:
# test_lti_platform::test_a_replayed_assertion_is_refused[postgresql]). 30 s, as ``Api.client``
# has. The product passes its own timeouts everywhere (its clients' behaviour is unchanged), and
# a test that checks a timeout sets its own.
_httpx_config.DEFAULT_TIMEOUT_CONFIG.connect = _httpx_config.DEFAULT_TIMEOUT_CONFIG.read = 30.0
_httpx_config.DEFAULT_TIMEOUT_CONFIG.write = _httpx_config.DEFAULT_TIMEOUT_CONFIG.pool = 30.0


# --- the costs the product pays on purpose, paid once per test process ---------------------------
# scrypt with the product's cost (N=2**14: 16 MB, 50-80 ms of CPU) ran twice per token a test
# asked for (the client's secret hashed when created, verified at /oauth/token). The tests
# hash with N=2**10: the same code, format and comparison (the stored hash names its N, and
# ``test_auth.py`` checks the product's value, ``PRODUCT_SCRYPT_N``); the dummy hash an
# unknown client is checked against is made with the same N, so both paths still run one
# scrypt of equal cost.
PRODUCT_SCRYPT_N = _auth_clients._N
_auth_clients._N = 2**10
_auth_clients._DUMMY_HASH = _auth_clients.hash_secret("not-a-secret", salt=b"0" * 16)


class _RsaKeyPool:
    """``rsa`` as ``gateway.auth.keys`` sees it: each test's fresh database made the gateway
    generate its signing key, a 2048-bit RSA key (80-150 ms of CPU, often more). The first 16
    keys asked for are generated and then handed out again in turn, so consecutive keys (a
    rotation, a test's second key) still differ; the key id is random as before."""

    SIZE = 16

    def __init__(self) -> None:
        self._keys: list[rsa.RSAPrivateKey] = []
        self._next = 0
        self._lock = threading.Lock()

    def generate_private_key(self, public_exponent: int, key_size: int) -> rsa.RSAPrivateKey:
        if (public_exponent, key_size) != (65537, 2048):
            return rsa.generate_private_key(public_exponent=public_exponent, key_size=key_size)
        with self._lock:
            if len(self._keys) < self.SIZE:
                self._keys.append(rsa.generate_private_key(public_exponent=public_exponent, key_size=key_size))
                return self._keys[-1]
            key = self._keys[self._next]
            self._next = (self._next + 1) % self.SIZE
            return key

    def __getattr__(self, name: str) -> object:
        return getattr(rsa, name)


_auth_keys.rsa = _RsaKeyPool()  # type: ignore[assignment]
#: the tests' own keys (an LTI tool's or platform's) come from a pool of their own, so a test's
#: key is never the gateway's
_TEST_KEYS = _RsaKeyPool()


def rsa_key() -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key for a test's peer (an LTI tool or platform): one of 16, in turn."""
    return _TEST_KEYS.generate_private_key(public_exponent=65537, key_size=2048)



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests (``slow``, ``e2e``) first: spread over the workers from the start
    instead of one of them running alone while the others have finished (``.ci/run``)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") or item.get_closest_marker("e2e") else 1)


PG_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("TESSERA_REQUIRE_POSTGRES") == "1"
FIXTURES = Path(__file__).parent / "fixtures"


# --- Temporal (helper "temporal", issue 16): the dev server .ci/run starts ----------------------
TEMPORAL_ADDRESS = os.environ.get("TESSERA_TEST_TEMPORAL_ADDRESS")
REQUIRE_TEMPORAL = os.environ.get("TESSERA_REQUIRE_TEMPORAL") == "1"


@pytest.fixture(scope="session")
def temporal_address() -> str:
    """``HOST:PORT`` of a Temporal server (``TESSERA_TEST_TEMPORAL_ADDRESS``); skipped when
    unset, an error when ``TESSERA_REQUIRE_TEMPORAL=1`` (as in CI)."""
    if not TEMPORAL_ADDRESS:
        if REQUIRE_TEMPORAL:
            pytest.fail("TESSERA_REQUIRE_TEMPORAL=1 but TESSERA_TEST_TEMPORAL_ADDRESS is not set")
        pytest.skip("Temporal not configured (set TESSERA_TEST_TEMPORAL_ADDRESS)")
    return TEMPORAL_ADDRESS
# --- end Temporal ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    store.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("TESSERA_REQUIRE_POSTGRES=1 but TESSERA_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set TESSERA_TEST_POSTGRES_URL)")
    name = f"tessera_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    store = open_store(url)
    store.migrate()
    store.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


#: every table, the gateway's and each adapter's
_TABLES = [tbl.name for meta in default_wiring().migrations.all_metadata() for tbl in meta.sorted_tables]
#: one query naming the tables that hold a row: most tests write to a few of the 53 tables,
#: and a TRUNCATE of all of them took 100-150 ms per test (a new file for each table and
#: index) where probing them and truncating the written ones takes a few
_WRITTEN = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in _TABLES)
#: the sequences that have handed out a value (TRUNCATE ... RESTART IDENTITY restarts only
#: those of the tables truncated: a row inserted and rolled back advances one too)
_USED_SEQUENCES = ("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences "
                   "WHERE last_value IS NOT NULL AND schemaname = current_schema()")


@pytest.fixture(scope="session")
def _pg_cleaner(_pg_database: str) -> Iterator[Engine]:
    eng = create_engine(_pg_database, pool_size=1)
    yield eng
    eng.dispose()


#: seconds the TRUNCATE of ``_empty_pg`` waits for its locks (nothing else should use this
#: worker's database between two tests: a wait is a connection an earlier test left open)
_EMPTY_LOCK_WAIT = 20
#: the other sessions of this database in a transaction: who keeps ``_empty_pg`` waiting
_HOLDERS = ("SELECT pid, state, now() - xact_start AS open_for, left(query, 200) AS query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL")


def _empty_pg(eng: Engine) -> None:
    """Every table empty and every sequence restarted, as after the migration: the same
    state a TRUNCATE of all tables ... RESTART IDENTITY leaves.

    The TRUNCATE needs every written table to itself. A connection an earlier test of this
    worker left in a transaction (not closed, or held by a thread still running) kept it
    waiting for ever, where PostgreSQL's deadlock check cannot see it (the holder waits in
    this process, not in the database). It waits ``_EMPTY_LOCK_WAIT`` s, then again after a
    garbage collection (which closes a connection left in a reference cycle); then this test
    fails naming the sessions that held it, which are ended so the next tests start clean."""
    from sqlalchemy.exc import OperationalError

    for attempt in (1, 2):
        try:
            with eng.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{_EMPTY_LOCK_WAIT}s'"))
                written = [row[0] for row in conn.execute(text(_WRITTEN))]
                if written:
                    conn.execute(text(f"TRUNCATE {', '.join(written)} RESTART IDENTITY CASCADE"))
                for seq in conn.execute(text(_USED_SEQUENCES)).scalars().all():
                    conn.execute(text(f"ALTER SEQUENCE {seq} RESTART"))
            return
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            if attempt == 1:
                import gc

                gc.collect()
    with eng.begin() as conn:
        holders = [dict(r) for r in conn.execute(text(_HOLDERS)).mappings()]
        for h in holders:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": h["pid"]})
    pytest.fail(f"the test database could not be emptied: sessions an earlier test of this worker left in a transaction "
                f"held its tables for {2 * _EMPTY_LOCK_WAIT} s (now ended): {holders}", pytrace=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "tessera.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_pg_database")
    _empty_pg(request.getfixturevalue("_pg_cleaner"))
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.dispose()


@dataclass
class Api:
    """A real server on a real port, and helpers to get credentials for it."""

    base_url: str
    store: Store
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def credentials(self, tenant: str, scopes: list[str]) -> tuple[str, str]:
        client, secret = ClientStore(self.store.engine).create(tenant, scopes)
        return client.client_id, secret

    def token(self, tenant: str = "t1", scopes: list[str] | None = None) -> str:
        cid, secret = self.credentials(tenant, scopes or ["roster.readonly", "competencies.readonly", "evidence.readonly", "records.write"])
        r = httpx.post(f"{self.base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret), timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def auth_client(self, tenant: str = "t1", scopes: list[str] | None = None) -> httpx.Client:
        c = self.client()
        c.headers["Authorization"] = f"Bearer {self.token(tenant, scopes)}"
        return c


class _Server(uvicorn.Server):
    """uvicorn's server, stopping as soon as it is asked to (``stop``).

    uvicorn checks its exit flag every 100 ms and then, shutting down, sleeps 100 ms more
    and polls its open connections every 100 ms: 0.2-0.3 s of a test's time per server,
    and the suite starts hundreds. Here the flag wakes the loop at once (the once-a-second
    work of the loop, the Date header, is unchanged), and the shutdown is uvicorn's (stop
    listening, ask each connection to close, wait for the connections and the background
    tasks still running, then the lifespan) polling every 5 ms."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        while self.server_state.connections or self.server_state.tasks:
            await asyncio.sleep(0.005)
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@contextmanager
def serve(app: object, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread on a free port (or ``port``); yields its base URL."""
    port = port or free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        thread.join(timeout=10)


@pytest.fixture
def make_api(store: Store) -> Iterator:
    """Start the app on a real port (``serve``); every server stops after the test."""
    from gateway.api.app import create_app

    with ExitStack() as stack:

        def start(**overrides: object) -> Api:
            settings = Settings(database_url=str(store.engine.url.render_as_string(hide_password=False)), **overrides)
            base_url = stack.enter_context(serve(create_app(settings, store=store)))
            return Api(base_url, store, settings)

        yield start


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """``tessera`` in-process on a fresh SQLite file (not migrated): ``cli(*args, code=0)``
    asserts the exit code (``code=None``: the caller checks it); ``cli.url`` is the database."""
    from typer.testing import CliRunner

    from gateway.cli import app, register_adapters
    from gateway.config import get_settings

    register_adapters()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TESSERA_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int | None = 0):
        result = runner.invoke(app, list(args), catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, result.output
        return result

    run.url = url
    yield run
    get_settings.cache_clear()

