"""Benchmark: LTI 1.3 launch validation with cached platform keys, and full launches over HTTP.

Part 1 (the issue's target, p99 under 10 ms): ``tool.validate_id_token`` on N distinct
id_tokens (default 5,000) signed RS256 by a platform key whose JWKS the cache already
holds: header, signature, iss/aud/azp/exp/iat/nonce and the LTI claims. Tokens are signed
before the clock starts; each validation is timed alone.

Part 2 (for context): M full launches (default 200) against the real app on a real port of
127.0.0.1 on a fresh SQLite database: ``GET /lti/login`` then ``POST /lti/launch`` with the
state cookie, which also spends the nonce and records the Person and Enrollment. Prints the
launch POST's p50/p99 and launches/s (login + launch round trips).

Run from the repository root::

    python bench/lti_launch.py
    python bench/lti_launch.py --tokens 20000 --launches 500

Not a test: pytest never collects this file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from adapters.lti.claims import LTI
from adapters.lti.tool.message_launch import PlatformKeys, validate_id_token
from adapters.lti.tool.platforms import Platform, PlatformIn, PlatformStore
from gateway.wiring import open_store

ISS, CLIENT_ID, DEPLOYMENT = "https://lms.bench.example", "bench-client", "bench-deployment"


def platform_key() -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid="bench-k1", alg="RS256", use="sig")
    return key, jwk


def id_token(key: Any, nonce: str, target: str, sub: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISS, "aud": CLIENT_ID, "sub": sub, "iat": now, "exp": now + 600, "nonce": nonce,
        "given_name": "Bench", "family_name": "Learner",
        LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0", LTI + "deployment_id": DEPLOYMENT,
        LTI + "target_link_uri": target, LTI + "resource_link": {"id": "rl-bench"},
        LTI + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
        LTI + "context": {"id": "ctx-bench", "title": "Bench course"},
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench-k1"})


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def validation(n: int) -> None:
    key, jwk = platform_key()
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"keys": [jwk]})))
    keys = PlatformKeys(http)
    p = Platform(uuid.uuid4(), "bench", "LMS", ISS, CLIENT_ID, (DEPLOYMENT,), f"{ISS}/auth", f"{ISS}/token", f"{ISS}/jwks", "sis")
    target = "https://tessera.bench.example/lti/launch"
    tokens = [(f"nonce-{i}", id_token(key, f"nonce-{i}", target, f"user-{i % 500}")) for i in range(n)]
    validate_id_token(tokens[0][1], p, nonce=tokens[0][0], target_link_uri=target, keys=keys)  # fill the key cache
    times = []
    t_all = time.perf_counter()
    for nonce, token in tokens:
        t0 = time.perf_counter()
        validate_id_token(token, p, nonce=nonce, target_link_uri=target, keys=keys)
        times.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - t_all
    print(f"validation, cached keys: {n} id_tokens  p50 {pct(times, 50):.3f} ms  p99 {pct(times, 99):.3f} ms  "
          f"max {max(times):.3f} ms  {n / total:,.0f} validations/s")


@contextmanager
def app_server(db: Path, jwk: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    import socket

    import uvicorn

    from gateway.api.app import create_app
    from gateway.config import Settings

    store = open_store(f"sqlite:///{db}")
    store.migrate()
    jwks_app = _jwks_app(jwk)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        jport = s.getsockname()[1]
    servers = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for app, prt in ((jwks_app, jport), (create_app(Settings(database_url=f"sqlite:///{db}"), store=store), port)):
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=prt, log_level="error", access_log=False, lifespan="off"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        servers.append(server)
    try:
        PlatformStore(store.engine).add("bench", PlatformIn(
            name="LMS", issuer=ISS, client_id=CLIENT_ID, deployment_ids=[DEPLOYMENT], auth_login_url=f"{ISS}/auth",
            token_url=f"{ISS}/token", jwks_url=f"http://127.0.0.1:{jport}/jwks",
        ))
        yield f"http://127.0.0.1:{port}", store
    finally:
        for server in servers:
            server.should_exit = True
        store.dispose()


def _jwks_app(jwk: dict[str, Any]) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return {"keys": [jwk]}

    return app


def launches(m: int) -> None:
    key, jwk = platform_key()
    with tempfile.TemporaryDirectory() as tmp, app_server(Path(tmp) / "bench.db", jwk) as (base, store):
        target = f"{base}/lti/launch"
        times = []
        t_all = time.perf_counter()
        for i in range(m):
            with httpx.Client(base_url=base, timeout=30) as browser:
                r = browser.get("/lti/login", params={"iss": ISS, "client_id": CLIENT_ID, "login_hint": str(i), "target_link_uri": target})
                auth = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
                token = id_token(key, auth["nonce"], target, f"user-{i}")
                t0 = time.perf_counter()
                r = browser.post("/lti/launch", data={"id_token": token, "state": auth["state"]})
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"launch {i} answered {r.status_code}: {r.text[:300]}")
        total = time.perf_counter() - t_all
        people = store.records.count("bench", "person")
    print(f"full launches over HTTP (SQLite): {m} login+launch  launch POST p50 {pct(times, 50):.1f} ms  "
          f"p99 {pct(times, 99):.1f} ms  {m / total:,.1f} launches/s  ({people} people recorded)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=5000, help="id_tokens validated in part 1")
    ap.add_argument("--launches", type=int, default=200, help="full HTTP launches in part 2 (0: skip)")
    args = ap.parse_args()
    validation(args.tokens)
    if args.launches:
        launches(args.launches)


if __name__ == "__main__":
    main()
