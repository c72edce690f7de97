"""The web console: server-rendered pages for learners and families, teachers, district
staff and integrators (FastAPI + Jinja2, one stylesheet, no front-end build).

``web`` holds what every page shares (sessions, CSRF, templates, error pages), ``access``
who may see what, ``app`` the assembly; each page module builds its own router.
"""

from .app import install

__all__ = ["install"]
