"""Conformance kits: checks run against any base URL (DESIGN section 7).

A kit (``conformance.kit.Kit``) is a list of checks that speak to a live endpoint over HTTP
only, as a vendor's own client would: nothing here imports the store, the gateway's API or
an adapter. ``conformance.runner`` runs a kit and writes its reports; ``tessera conformance``
is its command line. Kits live in ``conformance/kits/`` and are listed in ``MODULES`` there.
"""
