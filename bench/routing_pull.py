"""Benchmark: a pull route reads a whole roster from another Tessera's OneRoster 1.2 provider
(issue 16: "Pull 50,000 users from a second Tessera's OneRoster provider in under 15 s").

Loads a provider database with one district, ``--schools`` schools and ``--users`` users,
starts ``tessera serve`` on it (a second Tessera: the OneRoster REST provider is the peer),
and runs the ``oneroster.rest.client`` source of a pull route into a fresh local store, as
the routing engine does (``Source.pull``, one committed page at a time), with its default
page size. Prints the seconds, users a second and the host's speed before and after.

    python bench/routing_pull.py                     # 50,000 users, SQLite on both sides
    python bench/routing_pull.py --users 200000

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host_speed import measure as host_speed  # noqa: E402  (bench/ is sys.path[0])
from xapi_ingest import tessera  # noqa: E402

from adapters.oneroster.routing import RosterSource  # noqa: E402
from gateway.auth import ClientStore  # noqa: E402
from gateway.model import Identifier, Org, OrgRole, Person  # noqa: E402
from gateway.routing.protocol import Connection, Route  # noqa: E402
from gateway.wiring import open_store  # noqa: E402

T = "t1"


def load(url: str, users: int, schools: int) -> tuple[str, str]:
    store = open_store(url)
    store.migrate()
    district = Org(tenant=T, source="sis", native_id="d1", name="District", type="district")
    orgs = [district] + [Org(tenant=T, source="sis", native_id=f"s{i}", name=f"School {i}", type="school", parent_id=district.id)
                         for i in range(schools)]
    store.records.apply(T, orgs)
    batch = []
    for i in range(users):
        school = orgs[1 + i % schools]
        batch.append(Person(tenant=T, source="sis", native_id=f"u{i}", given_name="Given", family_name=f"Family {i}",
                            email=f"u{i}@example.org", roles=[OrgRole(role="student", org_id=school.id, primary=True)],
                            identifiers=[Identifier(system="sis", kind="oneroster.sourcedId", value=f"u{i}")]))
        if len(batch) == 10_000:
            store.records.apply(T, batch)
            batch = []
    if batch:
        store.records.apply(T, batch)
    client, secret = ClientStore(store.engine).create(T, ["roster.readonly"])
    store.dispose()
    return client.client_id, secret


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--schools", type=int, default=20)
    args = ap.parse_args()
    print(f"host speed before: {host_speed():.2f} µs (1.15 idle)")
    with tempfile.TemporaryDirectory() as tmp:
        provider = f"sqlite:///{tmp}/provider.db"
        t0 = time.perf_counter()
        cid, secret = load(provider, args.users, args.schools)
        print(f"provider loaded with {args.users} users in {time.perf_counter() - t0:.0f} s")
        os.environ["BENCH_OR_ID"], os.environ["BENCH_OR_SECRET"] = cid, secret
        local = open_store(f"sqlite:///{tmp}/local.db")
        local.migrate()
        with tessera(provider, 1) as (base, _pid):
            conn = Connection(uuid.uuid4(), T, "sis", "oneroster", "oneroster.rest.client", "sis", base,
                              {"client_id": "env:BENCH_OR_ID", "client_secret": "env:BENCH_OR_SECRET"}, {})
            route = Route(uuid.uuid4(), T, "pull-sis", "pull", (), conn, None)
            t0 = time.perf_counter()
            pages = list(RosterSource(conn).pull(local, route, None))
            seconds = time.perf_counter() - t0
        people = local.records.count(T, "person")
        read = sum(p.read for p in pages)
        print(f"pulled {read} records ({people} people stored) in {seconds:.2f} s: {people / seconds:,.0f} users/s "
              f"(target: 50,000 users in under 15 s)")
        local.dispose()
        if people != args.users:
            print(f"ERROR: {people} people stored, {args.users} expected")
            return 1
    print(f"host speed after: {host_speed():.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
