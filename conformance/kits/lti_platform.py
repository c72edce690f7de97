"""Kit ``lti-1.3-platform``: the kit plays an LTI 1.3 tool against the vendor's platform.

The checks live in two modules, imported here for their registrations on ``KIT`` (in this
order, so the ids read in order): ``lti_platform_launch`` (the kit's tool, JWKS, the login,
the id_token, refused authentication requests, service tokens) and ``lti_platform_services``
(AGS, NRPS, the OpenID configuration). What both LTI kits share lives in ``lti_common``.

What it covers: the platform's JWKS (kids, usable RSA keys, no private parts), the OIDC
third-party initiated login and authentication response (1EdTech Security Framework 1.0
5.1.1; LTI 1.3 Core 5.3-5.4 claims; signature against the JWKS; nonce and state round
trip; authentication requests a platform must refuse), service tokens (Security Framework
4.1, RFC 7523: a right assertion accepted; wrong signature, audience, expiry, reused jti,
unknown key or client refused; key rotation), AGS 2.0 (line items list/create/get/put/
delete, filters, paging, scores, results, media types, scopes) and NRPS 2.0 (membership
container, paging with Link rel=next, role filter).

Options (``--option KEY=VALUE``):

- ``issuer``, ``auth_url``, ``token_url``, ``jwks_url`` (required): the platform's.
- ``client_id``, ``deployment_id`` (required): what the platform gave the kit's tool.
- How a launch starts: ``launch_url`` (the kit calls it, POSTing ``launch_body`` when given,
  with the target's client credentials as a bearer token when given) answering a redirect to
  the tool's login URL, a form to it, or JSON ``{"login_url": ...}``; or
  ``login_initiation_url``, a ready third-party login URL (with its query).
- ``port``: the kit's tool server port (default: a free one), ``bind`` (default 127.0.0.1),
  ``public_url`` (its URL as the platform sees it, default ``http://bind:port``). The platform must know the
  kit's tool as: login URL ``{base}/login``, redirect URI ``{base}/launch``, JWKS
  ``{base}/jwks`` (signing key ``--tool-key-file`` or one made for the run).
- ``lineitems_url``, ``memberships_url``: the services, when the launch does not name them.
- ``score_user_id``: the userId scores are posted for (default: the launch's sub).
- ``openid_configuration_url``: the platform's OpenID configuration (Dynamic Registration
  1.0 3.3); its checks are skipped without it.
"""

from __future__ import annotations

from . import lti_platform_services  # noqa: F401 - registers the AGS, NRPS and configuration checks
from .lti_platform_launch import KIT

__all__ = ["KIT"]
