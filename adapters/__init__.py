"""Adapters: one package per standard, each translating wire <-> canonical both ways.

An adapter depends on ``gateway``, never on another adapter; ``gateway`` depends on no
adapter. They are found through the ``tessera.adapters`` entry-point group, so a third
party ships its own (Ed-Fi, Caliper, SIF) as a separate distribution.
"""
