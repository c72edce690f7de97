"""LTI 1.3 and LTI Advantage names both sides use: claim URIs, message types, service scopes.

Tessera reads these claims as a tool (``tool/message_launch.py`` validates a platform's
id_token) and writes them as a platform (``platform/message_launch.py`` signs its own), so
each URI is spelled once, here. Sources: LTI 1.3 core 5.3 (required message claims) and
5.4 (optional ones), Deep Linking 2.0 4.4-4.5, AGS 2.0 3.1, NRPS 2.0 3.6.1.1, Dynamic
Registration 1.0 3.2-3.3 (the tool and platform configuration objects).
"""

from __future__ import annotations

from typing import Any

#: the namespaces of the core claims and the Deep Linking claims
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"

# LTI 1.3 core 5.3-5.4
C_MESSAGE_TYPE = LTI + "message_type"
C_VERSION = LTI + "version"
C_DEPLOYMENT = LTI + "deployment_id"
C_TARGET = LTI + "target_link_uri"
C_RESOURCE_LINK = LTI + "resource_link"
C_ROLES = LTI + "roles"
C_CONTEXT = LTI + "context"
C_LIS = LTI + "lis"
C_CUSTOM = LTI + "custom"
C_PRESENTATION = LTI + "launch_presentation"
C_ROLE_SCOPE_MENTOR = LTI + "role_scope_mentor"
C_TOOL_PLATFORM = LTI + "tool_platform"
# Deep Linking 2.0 4.4 (request) and 4.5 (response)
C_DL_SETTINGS = DL + "deep_linking_settings"
C_DL_CONTENT_ITEMS = DL + "content_items"
C_DL_DATA = DL + "data"
# LTI Advantage service claims: AGS 2.0 3.1, NRPS 2.0 3.6.1.1
C_AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
C_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"

#: LTI 1.3 core 5.3.2: the one version value
VERSION = "1.3.0"
RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING = "LtiDeepLinkingRequest"
DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
#: the message types Tessera accepts as a tool
MESSAGE_TYPES = (RESOURCE_LINK, DEEP_LINKING)

#: LIS context type of a course section (LTI 1.3 core A.1)
COURSE_SECTION = "http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"

# OAuth 2.0 scopes of the LTI Advantage services: AGS 2.0 3.1, NRPS 2.0 3.6.1.1
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_CONTEXT_MEMBERSHIP = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE)
SERVICE_SCOPES = frozenset((*AGS_SCOPES, SCOPE_CONTEXT_MEMBERSHIP))

# Dynamic Registration 1.0 3.2 (the tool's configuration) and 3.3 (the platform's)
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"


def object_claim(claims: dict[str, Any], name: str) -> dict[str, Any]:
    """A claim that must be a JSON object, as a dict: empty when absent or of another type."""
    value = claims.get(name)
    return value if isinstance(value, dict) else {}


__all__ = [
    "AGS_SCOPES", "C_AGS", "C_CONTEXT", "C_CUSTOM", "C_DEPLOYMENT", "C_DL_CONTENT_ITEMS", "C_DL_DATA", "C_DL_SETTINGS",
    "C_LIS", "C_MESSAGE_TYPE", "C_NRPS", "C_PRESENTATION", "C_RESOURCE_LINK", "C_ROLE_SCOPE_MENTOR", "C_ROLES", "C_TARGET", "C_TOOL_PLATFORM",
    "C_VERSION", "COURSE_SECTION", "DEEP_LINKING", "DEEP_LINKING_RESPONSE", "DL", "LTI", "MESSAGE_TYPES",
    "PLATFORM_CONFIGURATION", "RESOURCE_LINK", "SCOPE_CONTEXT_MEMBERSHIP", "SCOPE_LINEITEM", "SCOPE_LINEITEM_READONLY",
    "SCOPE_RESULT_READONLY", "SCOPE_SCORE", "SERVICE_SCOPES", "TOOL_CONFIGURATION", "VERSION", "object_claim",
]
