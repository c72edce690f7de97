"""Attachments (Data 2.4.11, Communication 1.5.2) and signed statements (Data 2.6).

A statement's attachment is either a ``fileUrl`` or a part of a ``multipart/mixed`` request
whose ``X-Experience-API-Hash`` names the SHA-2 the statement declares; the LRS checks the
hash against the bytes (SHA-224/256/384/512 by the digest's length) and matches parts to
attachments by hash only (1.5.2.s1.b4). A signature attachment is a JWS (RS256/384/512)
whose payload must be the statement as signed, and whose signature is checked against the
X.509 certificate in its ``x5c`` header when there is one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import jwt
import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .http import XapiError
from .statement_store import same_statement
from .validation import SIGNATURE_USAGE

_ALGS = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}
_DIGESTS = {56: hashlib.sha224, 64: hashlib.sha256, 96: hashlib.sha384, 128: hashlib.sha512}


def _boundary(content_type: str) -> bytes:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value:
            return value.strip().strip('"').encode("latin-1")
    raise XapiError(400, "the multipart/mixed Content-Type has no boundary")


def _split(content_type: str, raw: bytes) -> list[tuple[dict[str, str], bytes]]:
    """RFC 2046 5.1: parts between ``--boundary`` delimiters, each headers CRLF CRLF body."""
    delimiter = b"--" + _boundary(content_type)
    chunks = raw.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise XapiError(400, "the multipart/mixed body is not delimited by its boundary")
    parts = []
    for chunk in chunks[1:-1]:
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk
        head, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = chunk.partition(b"\n\n")
            if not sep:
                if chunk.startswith(b"\r\n"):
                    head, body = b"", chunk[2:]
                else:
                    raise XapiError(400, "a multipart part has no blank line between its headers and content")
        headers = {}
        for line in head.decode("latin-1").splitlines():
            if line.strip():
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, body))
    return parts


def parse_multipart(content_type: str, raw: bytes) -> tuple[bytes, dict[str, tuple[str, bytes]]]:
    """The statements part and the attachment parts by SHA-2 (Communication 1.5.2.s2)."""
    parts = _split(content_type, raw)
    if not parts:
        raise XapiError(400, "the multipart/mixed body has no parts")
    head, first = parts[0]
    if head.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise XapiError(400, "the first part of a multipart/mixed request must be application/json statements")
    found: dict[str, tuple[str, bytes]] = {}
    for i, (headers, body) in enumerate(parts[1:], start=1):
        declared = headers.get("x-experience-api-hash")
        if not declared:
            raise XapiError(400, f"multipart part {i} has no X-Experience-API-Hash header")
        if headers.get("content-transfer-encoding", "").lower() != "binary":
            raise XapiError(400, f"multipart part {i} needs Content-Transfer-Encoding: binary")
        digest = _DIGESTS.get(len(declared))
        if digest is None or digest(body).hexdigest() != declared.lower():
            raise XapiError(400, f"multipart part {i}: its content does not have the SHA-2 {declared} it declares")
        found[declared.lower()] = (headers.get("content-type", "application/octet-stream"), body)
    return first, found


def check_attachments(batch: list[dict[str, Any]], originals: list[dict[str, Any]],
                      parts: dict[str, tuple[str, bytes]] | None) -> dict[str, tuple[str, bytes]]:
    """Every attachment without a fileUrl has its part; every part belongs to an attachment;
    signatures are well formed. Returns the parts to store."""
    used: set[str] = set()
    for i, s in enumerate(batch):
        for j, a in enumerate(_all_attachments(s)):
            sha2 = a["sha2"].lower()
            if parts is not None and sha2 in parts:
                used.add(sha2)
            elif "fileUrl" not in a:
                raise XapiError(400, f"statement[{i}].attachments[{j}]: no fileUrl and no multipart part with SHA-2 {a['sha2']}")
            if a["usageType"] == SIGNATURE_USAGE:
                _check_signature(originals[i] if originals else s, a, (parts or {}).get(sha2), f"statement[{i}].attachments[{j}]")
    if parts is not None:
        extra = set(parts) - used
        if extra:
            raise XapiError(400, f"multipart parts match no attachment of the statements: {', '.join(sorted(extra))}")
        return {k: parts[k] for k in used}
    return {}


def _all_attachments(s: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(s.get("attachments", ()))
    if s["object"].get("objectType") == "SubStatement":
        out += s["object"].get("attachments", ())
    return out


def _check_signature(statement: dict[str, Any], attachment: dict[str, Any], part: tuple[str, bytes] | None, path: str) -> None:
    """Data 2.6.s5: decode the JWS, compare its payload with the statement, check the alg
    and, with an x5c header, the signature."""
    if attachment["contentType"] != "application/octet-stream":
        raise XapiError(400, f"{path}.contentType: a signature attachment must be application/octet-stream")
    if part is None:
        raise XapiError(400, f"{path}: a signature must be sent as a multipart part")
    token = part[1].decode("latin-1").strip()
    try:
        header = jwt.get_unverified_header(token)
        signing_input, _, signature_b64 = token.rpartition(".")
        payload = orjson.loads(_b64(signing_input.split(".")[1]))
        signature = _b64(signature_b64)
    except (jwt.InvalidTokenError, IndexError, ValueError, orjson.JSONDecodeError):
        raise XapiError(400, f"{path}: the signature is not a JWS compact serialization of a statement") from None
    alg = header.get("alg")
    if alg not in _ALGS:
        raise XapiError(400, f"{path}: the signature algorithm must be RS256, RS384 or RS512, not {alg!r}")
    unsigned = dict(statement)
    rest = [a for a in unsigned.get("attachments", ()) if a["usageType"] != SIGNATURE_USAGE]
    if rest:
        unsigned["attachments"] = rest
    else:
        unsigned.pop("attachments", None)
    if not isinstance(payload, dict) or not same_statement(payload, unsigned):
        raise XapiError(400, f"{path}: the signed payload is not the statement it is attached to")
    if "x5c" in header:
        _verify_x5c(header["x5c"], alg, signing_input.encode("latin-1"), signature, path)


def _verify_x5c(chain: Any, alg: str, signing_input: bytes, signature: bytes, path: str) -> None:
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        key = cert.public_key()
    except (ValueError, TypeError, IndexError, KeyError):
        raise XapiError(400, f"{path}: the x5c header does not hold an X.509 certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise XapiError(400, f"{path}: the x5c certificate does not hold an RSA key")
    try:
        key.verify(signature, signing_input, padding.PKCS1v15(), _ALGS[alg]())
    except InvalidSignature:
        raise XapiError(400, f"{path}: the signature does not verify against the x5c certificate") from None


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def multipart_response(statements: bytes, content: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """Communication 1.5.2: the statements first, then each attachment's raw data."""
    boundary = secrets.token_hex(16)
    out = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(), statements, b"\r\n"]
    for sha2, (ctype, data) in content.items():
        out += [
            f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {sha2}\r\n\r\n".encode(),
            data,
            b"\r\n",
        ]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f'multipart/mixed; boundary="{boundary}"'
