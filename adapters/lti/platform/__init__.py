"""Tessera as an LTI 1.3 platform: it launches registered tools and answers their service calls.

One module per service:

- ``registrations``: the tools Tessera knows (``/v1`` API, Dynamic Registration, platform role).
- ``message_launch``: login initiation and the authorization endpoint: signed id_tokens
  (Security Framework 5.1.1, LTI core 5.3-5.4).
- ``token_endpoint``: access tokens for the tools' service calls (Security Framework 4.1,
  RFC 7523 client assertions).
- ``assignments_grades``: AGS 2.0 line items, scores (as Evidence) and results.
- ``names_roles``: NRPS 2.0 memberships, from the canonical roster.
- ``common``: the issuer URL and the services' error shape; ``cli``: ``tessera lti tools``;
  ``tables``: storage.

Nothing here imports ``adapters.lti.tool`` (Tessera as a tool): what both sides share is in
``adapters.lti.claims``, ``adapters.lti.roles`` and ``adapters.lti.pages``.
"""
