"""Conformance kits: checks run against any base URL (DESIGN section 7).

Each kit lands with its standard's adapter; this package holds the runner they share.
"""
