"""LTI Basic Outcomes 1.1 POX messages (section 6.1): the imsx_POXEnvelopeRequest a tool sends
(``pox_request``) and a consumer reads (``parse_pox``), and the imsx_POXEnvelopeResponse a
consumer answers (``pox_response``) and a tool reads (``parse_pox_response``). ``lti11`` sends
and answers them.

POX is parsed and written with lxml, with a parser that resolves no entities and reaches no
network.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.errors import UpstreamError

POX_NS = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"
POX_TYPE = "application/xml"
OPERATIONS = ("replaceResult", "readResult", "deleteResult")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


def _q(name: str) -> str:
    return f"{{{POX_NS}}}{name}"


@dataclass(frozen=True)
class PoxRequest:
    operation: str  # replaceResult, readResult, deleteResult (or what was sent, if unsupported)
    message_id: str
    sourcedid: str
    score: float | None = None


class PoxError(Exception):
    """A POX request Tessera cannot process: answered with ``code`` (failure / unsupported)."""

    def __init__(self, description: str, *, code: str = "failure", message_id: str = "", operation: str = "") -> None:
        super().__init__(description)
        self.description, self.code, self.message_id, self.operation = description, code, message_id, operation


def parse_pox(body: bytes) -> PoxRequest:
    """Basic Outcomes 1.1, 6.1: an imsx_POXEnvelopeRequest with one operation."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise PoxError(f"the body is not well-formed XML: {exc}") from None
    if root.tag != _q("imsx_POXEnvelopeRequest"):
        raise PoxError("the root element must be imsx_POXEnvelopeRequest in the imsoms_v1p0 namespace")
    message_id = root.findtext(f"{_q('imsx_POXHeader')}/{_q('imsx_POXRequestHeaderInfo')}/{_q('imsx_messageIdentifier')}") or ""
    ops = list(root.find(_q("imsx_POXBody")) if root.find(_q("imsx_POXBody")) is not None else [])
    if len(ops) != 1 or not isinstance(ops[0].tag, str):
        raise PoxError("imsx_POXBody must hold exactly one operation", message_id=message_id)
    tag = etree.QName(ops[0]).localname
    operation = tag.removesuffix("Request")
    if operation not in OPERATIONS:
        raise PoxError(f"{operation} is not supported", code="unsupported", message_id=message_id, operation=operation)
    record = ops[0].find(_q("resultRecord"))
    sourcedid = record.findtext(f"{_q('sourcedGUID')}/{_q('sourcedId')}") if record is not None else None
    if not sourcedid:
        raise PoxError("resultRecord/sourcedGUID/sourcedId is missing", message_id=message_id, operation=operation)
    score = None
    if operation == "replaceResult":
        text = record.findtext(f"{_q('result')}/{_q('resultScore')}/{_q('textString')}")
        try:
            score = float((text or "").strip())
        except ValueError:
            raise PoxError("result/resultScore/textString must be a decimal", message_id=message_id, operation=operation) from None
        if not 0.0 <= score <= 1.0:  # Basic Outcomes 6.1.1: a decimal in the range 0.0-1.0
            raise PoxError("result/resultScore/textString must lie between 0.0 and 1.0", message_id=message_id, operation=operation)
    return PoxRequest(operation, message_id, sourcedid.strip(), score)


def _el(parent: Any, name: str, text: str | None = None) -> Any:
    e = etree.SubElement(parent, _q(name))
    if text is not None:
        e.text = text
    return e


def pox_request(operation: str, sourcedid: str, score: float | None = None, *, message_id: str | None = None) -> bytes:
    """Basic Outcomes 6.1: the POX request a tool sends."""
    root = etree.Element(_q("imsx_POXEnvelopeRequest"), nsmap={None: POX_NS})
    info = _el(_el(root, "imsx_POXHeader"), "imsx_POXRequestHeaderInfo")
    _el(info, "imsx_version", "V1.0")
    _el(info, "imsx_messageIdentifier", message_id or secrets.token_hex(8))
    record = _el(_el(_el(root, "imsx_POXBody"), f"{operation}Request"), "resultRecord")
    _el(_el(record, "sourcedGUID"), "sourcedId", sourcedid)
    if score is not None:
        result_score = _el(_el(record, "result"), "resultScore")
        _el(result_score, "language", "en")
        _el(result_score, "textString", format(score, "g"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def pox_response(
    operation: str, message_ref: str, *, code: str = "success", description: str = "", score: float | None = None
) -> bytes:
    """Basic Outcomes 6.1: imsx_POXEnvelopeResponse with its imsx_statusInfo."""
    root = etree.Element(_q("imsx_POXEnvelopeResponse"), nsmap={None: POX_NS})
    info = _el(_el(root, "imsx_POXHeader"), "imsx_POXResponseHeaderInfo")
    _el(info, "imsx_version", "V1.0")
    _el(info, "imsx_messageIdentifier", secrets.token_hex(8))
    status = _el(info, "imsx_statusInfo")
    _el(status, "imsx_codeMajor", code)
    _el(status, "imsx_severity", "status" if code == "success" else "error")
    _el(status, "imsx_description", description)
    _el(status, "imsx_messageRefIdentifier", message_ref)
    _el(status, "imsx_operationRefIdentifier", operation)
    body = _el(root, "imsx_POXBody")
    if code == "success" and operation in OPERATIONS:
        response = _el(body, f"{operation}Response")
        if operation == "readResult":
            result_score = _el(_el(response, "result"), "resultScore")
            _el(result_score, "language", "en")
            _el(result_score, "textString", "" if score is None else format(score, "g"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse_pox_response(body: bytes) -> tuple[str, str, float | None]:
    """(codeMajor, description, readResult score) of a consumer's answer."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise UpstreamError("the outcome service answered with something that is not XML") from None
    status = root.find(f"{_q('imsx_POXHeader')}/{_q('imsx_POXResponseHeaderInfo')}/{_q('imsx_statusInfo')}")
    if root.tag != _q("imsx_POXEnvelopeResponse") or status is None:
        raise UpstreamError("the outcome service's answer is not an imsx_POXEnvelopeResponse")
    text = root.findtext(f".//{_q('readResultResponse')}/{_q('result')}/{_q('resultScore')}/{_q('textString')}")
    try:
        score = float(text) if text and text.strip() else None
    except ValueError:
        raise UpstreamError("the outcome service's readResult score is not a decimal") from None
    return status.findtext(_q("imsx_codeMajor")) or "", status.findtext(_q("imsx_description")) or "", score


__all__ = [
    "OPERATIONS", "POX_NS", "POX_TYPE", "PoxError", "PoxRequest", "parse_pox", "parse_pox_response", "pox_request",
    "pox_response",
]
