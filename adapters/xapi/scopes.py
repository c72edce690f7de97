"""The LRS's scopes: xAPI 1.0.3 Communication 4.2 / 2.0 scopes, namespaced "xapi/" + the
spec's own name, declared to the gateway by ``XapiAdapter``."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "xapi/statements/write": "write xAPI statements",
    "xapi/statements/read": "read any xAPI statement of the tenant",
    "xapi/statements/read/mine": "read the xAPI statements these credentials stored",
    "xapi/all/read": "read everything in the LRS (statements, state, profiles, activities, agents)",
    "xapi/all": "everything in the LRS",
    "xapi/state": "read and write xAPI state documents",
    "xapi/define": "(re)define xAPI activities and actors",
    "xapi/profile": "read and write xAPI activity and agent profiles",
}

#: A scope that implies others (one level: ``gateway.auth.scopes.expand``).
IMPLIES: dict[str, frozenset[str]] = {
    "xapi/all": frozenset({
        "xapi/statements/write", "xapi/statements/read", "xapi/statements/read/mine", "xapi/all/read",
        "xapi/state", "xapi/define", "xapi/profile",
    }),
    "xapi/all/read": frozenset({"xapi/statements/read", "xapi/statements/read/mine"}),
    "xapi/statements/read": frozenset({"xapi/statements/read/mine"}),
}

XAPI_SCOPES = sorted(SCOPES)
