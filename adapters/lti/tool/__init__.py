"""Tessera as an LTI 1.3 tool: an LMS (the platform) launches Tessera and lends it its services.

One module per service, as pylti1p3 lays them out:

- ``platforms``: the platforms Tessera trusts (manual and Dynamic Registration, ``/v1`` API).
- ``oidc_login``: the OIDC third-party initiated login (Security Framework 5.1.1).
- ``message_launch``: the id_token validated (Security Framework 5.1.3, LTI core 5.3-5.4).
- ``roster``, ``contexts``, ``view``: what a launch records and shows.
- ``deep_link``: Deep Linking 2.0, competency views placed in a course.
- ``assignments_grades``: AGS 2.0 client, mastery into the LMS gradebook.
- ``names_roles``: NRPS 2.0 client, the LMS roster into people and enrollments.
- ``service_auth``: access tokens for those service calls (a JWT client assertion).
- ``router``: the endpoints assembled; ``cli``: ``tessera lti platforms``; ``tables``: storage.

Nothing here imports ``adapters.lti.platform`` (Tessera as a platform): what both sides
share is in ``adapters.lti.claims``, ``adapters.lti.roles`` and ``adapters.lti.pages``.
"""
