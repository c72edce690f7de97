"""xAPI 1.0.3 Communication 1.5.2 (multipart/mixed attachments) and Data 2.6 (signed
statements), over real HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import jwt
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.xapi_support import statement

pytest_plugins = ["tests.xapi_fixtures"]  # the lrs fixture

SIGNATURE = "http://adlnet.gov/expapi/attachments/signature"
TEXT = b"here is a simple attachment"


def _attachment(data: bytes, **over) -> dict:
    a = {"usageType": "http://example.com/attachment-usage/test", "display": {"en-US": "A test attachment"},
         "contentType": "text/plain; charset=ascii", "length": len(data), "sha2": hashlib.sha256(data).hexdigest()}
    a.update(over)
    return a


def _multipart(statements, parts: list[tuple[bytes, dict[str, str]]]) -> tuple[bytes, str]:
    boundary = "abcABC0123'()+_,-./:=?"
    out = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(), orjson.dumps(statements), b"\r\n"]
    for data, headers in parts:
        out.append(f"--{boundary}\r\n".encode())
        out += [f"{k}: {v}\r\n".encode() for k, v in headers.items()]
        out += [b"\r\n", data, b"\r\n"]
    out.append(f"--{boundary}--".encode())
    return b"".join(out), f'multipart/mixed; boundary="{boundary}"'


def _part(data: bytes, content_type: str = "text/plain", sha: str | None = None) -> tuple[bytes, dict[str, str]]:
    return data, {"Content-Type": content_type, "Content-Transfer-Encoding": "binary",
                  "X-Experience-API-Hash": sha or hashlib.sha256(data).hexdigest()}


def test_statement_with_attachment_is_stored_and_returned_with_attachments_true(lrs) -> None:
    c = lrs()
    s = statement(attachments=[_attachment(TEXT)])
    body, ctype = _multipart(s, [_part(TEXT)])
    r = c.post("/statements", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    plain = c.get(f"/statements?statementId={s['id']}")
    assert plain.headers["Content-Type"].startswith("application/json")
    got = c.get(f"/statements?statementId={s['id']}&attachments=true")
    assert got.headers["Content-Type"].startswith("multipart/mixed")
    assert TEXT in got.content and hashlib.sha256(TEXT).hexdigest().encode() in got.content


def test_attachment_without_file_url_or_part_is_400(lrs) -> None:
    c = lrs()
    assert c.post("/statements", json=statement(attachments=[_attachment(TEXT)])).status_code == 400
    s = statement(attachments=[_attachment(TEXT)])
    body, ctype = _multipart(s, [])
    assert c.post("/statements", content=body, headers={"Content-Type": ctype}).status_code == 400


def test_attachment_with_file_url_needs_no_part(lrs) -> None:
    s = statement(attachments=[_attachment(TEXT, fileUrl="http://example.com/files/a.txt")])
    assert lrs().post("/statements", json=s).status_code == 200


def test_part_whose_content_does_not_match_its_hash_is_400(lrs) -> None:
    s = statement(attachments=[_attachment(TEXT)])
    body, ctype = _multipart(s, [_part(b"something else", sha=hashlib.sha256(TEXT).hexdigest())])
    r = lrs().post("/statements", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "SHA-2" in r.json()["message"]


def test_part_without_hash_or_transfer_encoding_is_400(lrs) -> None:
    c = lrs()
    s = statement(attachments=[_attachment(TEXT)])
    data, headers = _part(TEXT)
    for missing in ("X-Experience-API-Hash", "Content-Transfer-Encoding"):
        h = {k: v for k, v in headers.items() if k != missing}
        body, ctype = _multipart(s, [(data, h)])
        assert c.post("/statements", content=body, headers={"Content-Type": ctype}).status_code == 400, missing


def test_a_part_that_matches_no_attachment_is_400(lrs) -> None:
    s = statement(attachments=[_attachment(TEXT)])
    body, ctype = _multipart(s, [_part(TEXT), _part(b"stray")])
    assert lrs().post("/statements", content=body, headers={"Content-Type": ctype}).status_code == 400


def test_sha512_attachment_is_accepted(lrs) -> None:
    sha = hashlib.sha512(TEXT).hexdigest()
    s = statement(attachments=[_attachment(TEXT, sha2=sha)])
    body, ctype = _multipart(s, [_part(TEXT, sha=sha)])
    assert lrs().post("/statements", content=body, headers={"Content-Type": ctype}).status_code == 200


@pytest.fixture(scope="module")
def signer() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xAPI test signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _signed(s: dict, key, x5c: str | None, alg: str = "RS256", payload: dict | None = None) -> tuple[bytes, str]:
    headers = {"x5c": [x5c]} if x5c else {}
    token = jwt.encode(payload or s, key, algorithm=alg, headers=headers).encode()
    signed = dict(s, attachments=[_attachment(token, usageType=SIGNATURE, contentType="application/octet-stream",
                                              display={"en-US": "Signature"})])
    return _multipart(signed, [_part(token, "application/octet-stream")])


def test_signed_statement_is_accepted(lrs, signer) -> None:
    key, cert = signer
    body, ctype = _signed(statement(), key, cert, "RS384")
    r = lrs().post("/statements", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text


def test_signature_whose_payload_is_another_statement_is_400(lrs, signer) -> None:
    key, cert = signer
    s = statement()
    body, ctype = _signed(s, key, cert, payload={**s, "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"}})
    r = lrs().post("/statements", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "payload" in r.json()["message"]


def test_signature_with_a_disallowed_algorithm_is_400(lrs) -> None:
    s = statement()
    token = jwt.encode(s, "a shared secret of at least 32 bytes", algorithm="HS256").encode()
    signed = dict(s, attachments=[_attachment(token, usageType=SIGNATURE, contentType="application/octet-stream")])
    body, ctype = _multipart(signed, [_part(token, "application/octet-stream")])
    r = lrs().post("/statements", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "RS256" in r.json()["message"]


def test_signature_that_does_not_verify_against_its_certificate_is_400(lrs, signer) -> None:
    _, cert = signer
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body, ctype = _signed(statement(), other, cert)
    r = lrs().post("/statements", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "x5c" in r.json()["message"]


def test_signature_compares_durations_to_the_hundredth_of_a_second(lrs, signer) -> None:
    """Data 4.6.s1.b5 (2.0 Data 4.2.7: "shall not be included in the comparison"): a payload
    with P0.12S signs a statement carrying P0.1237S; one with P0.13S does not."""
    key, cert = signer
    c = lrs(version="2.0.0")
    for signed_duration, sent_duration, status in (("PT0.12S", "PT0.1237S", 200), ("PT0.13S", "PT0.1237S", 400)):
        s = statement(result={"duration": sent_duration})
        body, ctype = _signed(s, key, cert, payload={**s, "result": {"duration": signed_duration}})
        r = c.post("/statements", content=body, headers={"Content-Type": ctype})
        assert r.status_code == status, (signed_duration, r.text)
