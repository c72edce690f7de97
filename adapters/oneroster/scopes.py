"""OneRoster 1.2's gradebook and resources scopes, and its URI scope form, declared to the
gateway by ``OneRosterAdapter`` (the rostering scopes are the gateway's own: its /v1 API
reads with them); and Tessera's own ``roster-credentials.readonly`` (``credentials``):
OneRoster 1.2 defines no scope for user passwords, and none of its scopes, not even
``roster.readonly``, implies this one."""

from __future__ import annotations

#: OneRoster 1.2 scopes as URIs: ``normalize`` folds them onto the short names
URI_PREFIX = "https://purl.imsglobal.org/spec/or/v1p2/scope/"

#: reading user passwords kept sealed (``credentials``); granted only by name
CREDENTIALS_SCOPE = "roster-credentials.readonly"

SCOPES: dict[str, str] = {
    "gradebook.readonly": "read line items, results and score scales",
    "gradebook.createput": "create and replace line items and results",
    "gradebook.delete": "delete line items and results",
    "resource.readonly": "read resources",
    CREDENTIALS_SCOPE: "read OneRoster user passwords an import kept sealed (Tessera's own scope; implied by no other)",
}
