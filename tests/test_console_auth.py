"""Who gets into the web console, and how (over real HTTP against a real ``tessera serve``).

- An LTI 1.3 launch from an LMS (``console_auth_support.LocalLms``, signing id_tokens as LTI
  1.3 core 5 says) opens a session and lands each role where it belongs: a learner on their
  profile, an instructor or teaching assistant on the class, a mentor on their child, an
  institution administrator on the start page; an LTI 1.1 launch (OAuth 1.0a, oauthlib as
  the independent signer) does the same.
- Staff sign in by OpenID Connect against ``LocalIdP`` (code flow, PKCE S256, joserfc-signed
  id_tokens): teachers by their roster email, administrators by an ``oidc.sub`` identifier;
  an unknown person, a student, a wrong nonce, a wrong state are refused with a page.
- Sessions: expired and altered cookies go back to sign-in and, after it, to the page asked
  for (also after a form POST); sign-out; the cookie's attributes; CSRF.
"""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from types import SimpleNamespace
from typing import Any
from unittest import mock
from urllib.parse import quote, urlencode

import httpx
import pytest

from adapters.lti.claims import LTI
from gateway.console.settings import ConsoleSettings
from gateway.console.web import COOKIE, Console, SessionCodec, Viewer

from .console_auth_support import (  # noqa: F401
    INSTRUCTOR,
    LEARNER,
    MENTOR,
    TA,
    AuthSite,
    auth_site_fixture,
    location,
    query,
    sourced_id,
)
from .console_roles import check_pages, scene
from .console_support import SECRET

CALLBACK = "/console/sign-in/oidc/callback"
#: a real server (tessera serve with the demo data) and the peers on their own ports
pytestmark = pytest.mark.e2e


def session_of(site: AuthSite, r: httpx.Response) -> Viewer:
    cookie = r.cookies.get(COOKIE)
    assert cookie, f"no session cookie in {r.headers.get_list('set-cookie')}"
    viewer = site.site.codec.loads(cookie)
    assert viewer is not None
    return viewer


def set_cookie(r: httpx.Response, name: str) -> str:
    (line,) = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return line


# --- LTI 1.3 ------------------------------------------------------------------------------------


def test_an_lti_launch_lands_each_role_on_their_page(auth_site: AuthSite) -> None:
    p, lms = auth_site.people, auth_site.lms
    landing = {
        "learner": f"/console/learners/{p['learner']['id']}",
        "teacher": f"/console/classes/{p['section']['id']}",
        # the mentor's role_scope_mentor names the learner; the roster lists them as the learner's agent
        "guardian": f"/console/learners/{p['learner']['id']}",
        "admin": "/console",
    }
    for role, where in landing.items():  # the learner first: their launch gives them the LMS sub the mentor names
        browser, r = lms.launch(role)
        with closing(browser):
            assert r.status_code == 303, (role, r.text)
            assert location(r) == where, role
            viewer = session_of(auth_site, r)
            assert (viewer.tenant, viewer.role, viewer.via) == ("demo", role, "lti1.3")
            if role != "admin":
                assert str(viewer.person_id) == p[role]["id"]  # joined to the roster person by the LIS sourcedId
                assert viewer.name == f"{p[role]['given_name']} {p[role]['family_name']}"
            # the cookie: HttpOnly, SameSite=Lax, the console's path only, not Secure on plain http
            attrs = [a.strip().lower() for a in set_cookie(r, COOKIE).split(";")]
            assert {"httponly", "samesite=lax", "path=/console"} <= set(attrs) and "secure" not in attrs
            # the LTI state cookie is spent
            assert any(c.startswith("lti1p3-state-") and "Max-Age=0" in c for c in r.headers.get_list("set-cookie"))
            # the session opens the console: the start page sends the admin on to the schools
            if role == "admin":
                home = browser.get(f"{auth_site.site.base_url}/console")
                assert home.status_code == 303 and location(home) == "/console/schools"


def test_a_teaching_assistant_lands_on_the_class_and_may_open_it(auth_site: AuthSite) -> None:
    section = auth_site.people["section"]
    lms = auth_site.lms
    lis = {"course_section_sourcedid": sourced_id(section, auth_site.people["system"]["name"])}  # not in the roster: the LMS's person
    lms.users["ta"] = {"sub": "lms-ta-1", "given_name": "Tam", "family_name": "Assist", LTI + "lis": lis, LTI + "roles": [TA]}
    browser, r = lms.launch("ta")
    with closing(browser):
        assert r.status_code == 303 and location(r) == f"/console/classes/{section['id']}"
        viewer = session_of(auth_site, r)
        assert viewer.role == "teacher" and viewer.name == "Tam Assist"
        # their enrollment (role aide, recorded by the launch) lets them see the section
        from .console_support import ConsoleSite

        site: ConsoleSite = auth_site.site
        rows = site.rows("SELECT role FROM enrollments WHERE tenant='demo' AND person_id = ?", viewer.person_id.bytes)  # type: ignore[union-attr]
        assert rows == [("aide",)]


def test_a_launch_without_a_console_role_shows_the_tool_page(auth_site: AuthSite) -> None:
    browser, r = auth_site.lms.launch("developer")
    with closing(browser):
        assert r.status_code == 200 and "Tessera" in r.text
        assert COOKIE not in r.cookies


# --- LTI 1.1 ------------------------------------------------------------------------------------


def test_an_lti11_launch_signs_in_too(auth_site: AuthSite) -> None:
    from oauthlib.oauth1 import Client

    from adapters.lti.lti11 import Credentials
    from gateway.wiring import open_store

    store = open_store(auth_site.site.env["TESSERA_DATABASE_URL"])
    try:
        Credentials(store.engine).add("demo", "cvusd-lms-11", "lti11-secret-value-1", role="tool", name="Old LMS",
                                      roster_system=auth_site.people["system"]["name"])
    finally:
        store.dispose()
    p = auth_site.people
    system = p["system"]["name"]
    url = f"{auth_site.site.base_url}/lti11/launch"
    cases = [
        ({"user_id": "u11-learner", "roles": "urn:lti:role:ims/lis/Learner", "lis_person_sourcedid": sourced_id(p["learner"], system)},
         f"/console/learners/{p['learner']['id']}", "learner"),
        ({"user_id": "u11-teacher", "roles": "urn:lti:role:ims/lis/Instructor", "lis_person_sourcedid": sourced_id(p["teacher"], system),
          "lis_course_section_sourcedid": sourced_id(p["section"], system)}, f"/console/classes/{p['section']['id']}", "teacher"),
        ({"user_id": "u11-mentor", "roles": "urn:lti:role:ims/lis/Mentor", "lis_person_sourcedid": sourced_id(p["guardian"], system),
          "role_scope_mentor": "u11-learner"}, f"/console/learners/{p['learner']['id']}", "guardian"),
        ({"user_id": "u11-admin", "roles": "urn:lti:instrole:ims/lis/Administrator", "lis_person_name_full": "Ola Admin"},
         "/console", "admin"),
    ]
    for extra, where, role in cases:
        params = {"lti_message_type": "basic-lti-launch-request", "lti_version": "LTI-1p0", "resource_link_id": "rl-11",
                  "context_id": "ctx-11", "context_title": "Math", **extra}
        uri, headers, body = Client("cvusd-lms-11", client_secret="lti11-secret-value-1").sign(
            url, "POST", body=urlencode(params), headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = httpx.post(uri, content=body, headers=headers)
        assert r.status_code == 303, (role, r.text)
        assert location(r) == where, role
        viewer = session_of(auth_site, r)
        assert (viewer.role, viewer.via) == (role, "lti1.1")


# --- OpenID Connect -----------------------------------------------------------------------------


def oidc_sign_in(site: AuthSite, user: dict[str, Any], next_url: str | None = None, *, tamper: dict[str, Any] | None = None,
                 browser: httpx.Client | None = None, state: str | None = None) -> tuple[httpx.Client, httpx.Response]:
    """The browser's way through staff sign-in: Tessera -> the provider -> the callback."""
    site.idp.user, site.idp.tamper = user, tamper or {}
    browser = browser or httpx.Client(timeout=30, follow_redirects=False)
    start = browser.get(f"{site.site.base_url}/console/sign-in/oidc", params={"next": next_url} if next_url else None)
    assert start.status_code == 303, start.text
    at_idp = browser.get(start.headers["location"])
    assert at_idp.status_code == 302, at_idp.text
    back = at_idp.headers["location"]
    if state is not None:
        back = back.replace(f"state={query(back)['state']}", f"state={state}")
    return browser, browser.get(back)


def test_a_teacher_signs_in_by_oidc_with_their_roster_email(auth_site: AuthSite) -> None:
    teacher, section = auth_site.people["teacher"], auth_site.people["section"]
    want = f"/console/classes/{section['id']}?sort=name"
    browser, r = oidc_sign_in(auth_site, {"sub": "idp-teacher-1", "email": teacher["email"].upper(), "email_verified": True}, want)
    with closing(browser):
        assert r.status_code == 303, r.text
        assert location(r) == want
        viewer = session_of(auth_site, r)
        assert (viewer.role, str(viewer.person_id), viewer.via, viewer.tenant) == ("teacher", teacher["id"], "oidc", "demo")
        # the authorization request: code flow, PKCE S256, state and nonce, the callback, the scopes
        auth = auth_site.idp.authorize_requests[-1]
        assert auth["response_type"] == "code" and auth["code_challenge_method"] == "S256" and len(auth["code_challenge"]) == 43
        assert auth["state"] and auth["nonce"] and auth["state"] != auth["nonce"]
        assert auth["redirect_uri"] == auth_site.site.base_url + CALLBACK and auth["scope"] == "openid email profile"
        # the code exchange: client_secret_basic and the PKCE verifier (the provider checked it against the challenge)
        tok = auth_site.idp.token_requests[-1]
        assert tok["grant_type"] == "authorization_code" and tok["authorization"].startswith("Basic ") and len(tok["code_verifier"]) >= 43
        # the flow cookie is gone once used
        assert any(c.startswith("tessera_console_oidc=") and "Max-Age=0" in c for c in r.headers.get_list("set-cookie"))


def test_an_administrator_signs_in_by_their_oidc_sub(auth_site: AuthSite) -> None:
    from gateway.model import Identifier, Person
    from gateway.wiring import open_store

    admin = auth_site.people["admin"]
    store = open_store(auth_site.site.env["TESSERA_DATABASE_URL"])
    try:
        person = store.records.get("demo", "person", uuid.UUID(admin["id"]))
        assert isinstance(person, Person)
        store.records.apply("demo", [person.model_copy(update={"identifiers": [
            *person.identifiers, Identifier(system=auth_site.idp.base, kind="oidc.sub", value="idp-admin-7")]})])
    finally:
        store.dispose()
    # the provider's email is not the roster's: the sub identifier decides
    browser, r = oidc_sign_in(auth_site, {"sub": "idp-admin-7", "email": "d.okafor@idp.example.org"}, "https://evil.example/x")
    with closing(browser):
        assert r.status_code == 303 and location(r) == "/console"  # no open redirect
        viewer = session_of(auth_site, r)
        assert (viewer.role, str(viewer.person_id), viewer.name) == ("admin", admin["id"], "Dana Okafor")


@pytest.mark.parametrize("case", ["unknown person", "student", "unverified email", "wrong nonce", "wrong audience", "forged signature",
                                  "wrong state", "no flow cookie"])
def test_oidc_refusals(auth_site: AuthSite, case: str) -> None:
    learner, teacher = auth_site.people["learner"], auth_site.people["teacher"]
    good = {"sub": "idp-x", "email": teacher["email"]}
    user, tamper, state, status, says = {
        "unknown person": ({"sub": "idp-nobody", "email": "nobody@elsewhere.example.org"}, None, None, 403, "could not find you"),
        "student": ({"sub": "idp-student", "email": learner["email"]}, None, None, 403, "for teachers and district staff"),
        "unverified email": ({**good, "email_verified": False}, None, None, 403, "could not find you"),
        "wrong nonce": (good, {"nonce": "not-the-nonce"}, None, 401, "could not check"),
        "wrong audience": (good, {"aud": "another-client"}, None, 401, "could not check"),
        "forged signature": (good, None, None, 401, "could not check"),
        "wrong state": (good, None, "forged-state", 400, "not the one this browser started"),
        "no flow cookie": (good, None, None, 400, "took too long"),
    }[case]
    if case == "no flow cookie":
        browser = httpx.Client(timeout=30, follow_redirects=False)
        start = browser.get(f"{auth_site.site.base_url}/console/sign-in/oidc")
        back = httpx.get(start.headers["location"]).headers["location"]  # the callback in another browser
        r = httpx.get(back)
    else:
        auth_site.idp.forge = case == "forged signature"
        try:
            browser, r = oidc_sign_in(auth_site, user, tamper=tamper, state=state)
        finally:
            auth_site.idp.forge = False
    with closing(browser):
        assert r.status_code == status, r.text
        assert "We could not sign you in" in r.text and says in r.text
        assert COOKIE not in r.cookies
    log = (auth_site.site.tmp / "server.log").read_text()
    assert "OpenID Connect sign-in refused" in log
    # logged without tokens or codes
    assert "eyJ" not in log and "code=" not in log


def test_oidc_is_offered_on_the_sign_in_page_with_the_page_asked_for(auth_site: AuthSite) -> None:
    with auth_site.site.http() as c:
        r = c.get("/console/sign-in", params={"next": "/console/classes/x?sort=name"})
    assert r.status_code == 200
    assert 'href="/console/sign-in/oidc?next=/console/classes/x%3Fsort%3Dname"' in r.text
    assert "taken back to the page you were on" in r.text


# --- sessions -----------------------------------------------------------------------------------


def expired_cookie(viewer: Viewer, hours: float = 9) -> str:
    """A cookie signed ``hours`` ago (sessions last 8 hours)."""
    codec = SessionCodec(SECRET.encode(), max_age_seconds=480 * 60)
    with mock.patch("itsdangerous.timed.time.time", return_value=time.time() - hours * 3600):
        return codec.dumps(viewer)


def test_an_expired_or_altered_session_returns_to_sign_in_then_to_the_page(auth_site: AuthSite) -> None:
    site = auth_site.site
    teacher = auth_site.people["teacher"]
    viewer = site.viewer("teacher", teacher["id"])
    page = "/console?from=expired"  # any console page (the class pages come with tests/test_console_class.py)
    good = site.cookie(viewer)
    altered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for cookie in (expired_cookie(viewer), altered, site.cookie(viewer.__class__(**{**viewer.__dict__, "role": "nobody"}))):
        with httpx.Client(base_url=site.base_url, follow_redirects=False) as c:
            c.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/console")
            r = c.get(page)
            assert r.status_code == 303 and location(r) == f"/console/sign-in?next={quote(page, safe='')}"
            assert any(s.startswith(f"{COOKIE}=") and "Max-Age=0" in s for s in r.headers.get_list("set-cookie"))
    # ... and signing in again comes back to the page asked for
    sign_in_page = httpx.get(site.base_url + location(r))
    assert sign_in_page.status_code == 200
    browser, back = oidc_sign_in(auth_site, {"sub": "idp-t", "email": teacher["email"]}, query(location(r))["next"])
    with closing(browser):
        assert back.status_code == 303 and location(back) == page


def test_a_form_posted_after_the_session_ended_returns_to_the_form_page(auth_site: AuthSite) -> None:
    site = auth_site.site
    teacher = auth_site.people["teacher"]
    viewer = site.viewer("teacher", teacher["id"])
    form_page = f"/console/classes/{auth_site.people['section']['id']}?sort=name"
    with httpx.Client(base_url=site.base_url, follow_redirects=False) as c:
        c.cookies.set(COOKIE, expired_cookie(viewer), domain="127.0.0.1", path="/console")
        r = c.post("/console/sign-out", data={"csrf_token": site.codec.csrf(viewer)}, headers={"Referer": site.base_url + form_page})
        assert r.status_code == 303 and location(r) == f"/console/sign-in?next={quote(form_page, safe='')}"
        # a Referer from another site is not followed
        c.cookies.set(COOKIE, expired_cookie(viewer), domain="127.0.0.1", path="/console")
        r2 = c.post("/console/sign-out", data={}, headers={"Referer": "https://evil.example/console/x"})
        assert r2.status_code == 303 and location(r2) == "/console/sign-in?next=%2Fconsole"
    browser, back = oidc_sign_in(auth_site, {"sub": "idp-t2", "email": teacher["email"]}, query(location(r))["next"])
    with closing(browser):
        assert back.status_code == 303 and location(back) == form_page


def test_sign_out_ends_the_session_and_needs_the_csrf_token(auth_site: AuthSite) -> None:
    site = auth_site.site
    viewer = site.viewer("teacher", auth_site.people["teacher"]["id"])
    other = site.viewer("teacher", auth_site.people["teacher"]["id"])  # another session of the same person
    with site.http(viewer) as c:
        for token in ("", "0" * 64, site.codec.csrf(other)):
            r = c.post("/console/sign-out", data={"csrf_token": token})
            assert r.status_code == 403 and "did not come from this site" in r.text
        page = c.get("/console")
        assert page.status_code == 303 and not location(page).startswith("/console/sign-in")  # still signed in
        r = c.post("/console/sign-out", data={"csrf_token": site.codec.csrf(viewer)})
        assert r.status_code == 303 and location(r) == "/console/sign-in"
        assert "Max-Age=0" in set_cookie(r, COOKIE)
        c.cookies.delete(COOKIE)
        assert location(c.get("/console")).startswith("/console/sign-in")


def test_the_session_cookie_is_secure_behind_https() -> None:
    ctx = SimpleNamespace(settings=SimpleNamespace(public_url="https://tessera.cvusd.example.org"), store=None)
    console = Console(ctx, ConsoleSettings(secret="s" * 32))  # type: ignore[arg-type]
    viewer = Viewer(tenant="demo", role="teacher", person_id=uuid.uuid4(), name="T", via="oidc")
    r = console.sign_in(viewer, "/console/classes")
    attrs = {a.strip().lower() for a in r.headers["set-cookie"].split(";")}
    assert {"httponly", "samesite=lax", "path=/console", "secure"} <= attrs
    assert f"max-age={480 * 60}" in attrs
    plain = Console(SimpleNamespace(settings=SimpleNamespace(public_url=None), store=None), ConsoleSettings(secret="s" * 32))  # type: ignore[arg-type]
    assert "secure" not in plain.sign_in(viewer).headers["set-cookie"].lower()


def test_each_persona_sees_only_their_pages(auth_site: AuthSite) -> None:
    assert check_pages(auth_site.site, scene(auth_site.site)) == []


# --- the roster match, on each database -----------------------------------------------------------


def test_oidc_finds_staff_in_the_roster_on_each_database(store: Any) -> None:
    from gateway.console.oidc import OidcSignIn, SignInRefused
    from gateway.model import Identifier, Status
    from tests import factories as f

    issuer = "https://login.district.example"
    school = f.org()
    teacher = f.person("t-1", school, role="teacher", email="Ms.Reyes@District.example.org")
    lookalike = f.person("s-1", school, email="xms.reyes@district.example.org")  # contains the email, is not it
    wildcard = f.person("s-2", school, email="a_b@district.example.org")
    admin = f.person("a-1", school, role="administrator", email="boss@district.example.org",
                     identifiers=[Identifier(system=issuer, kind="oidc.sub", value="sub-admin")])
    parent = f.person("g-1", school, role="guardian", email="shared@district.example.org")
    aide = f.person("t-2", school, role="aide", email="shared@district.example.org")
    twin_a = f.person("t-3", school, role="teacher", email="twin@district.example.org")
    twin_b = f.person("t-4", school, role="teacher", email="twin@district.example.org")
    gone = f.person("t-5", school, role="teacher", email="gone@district.example.org", status=Status.tobedeleted)
    store.records.apply(f.T, [school, teacher, lookalike, wildcard, admin, parent, aide, twin_a, twin_b, gone])
    settings = ConsoleSettings(secret="s" * 32, oidc_issuer=issuer, oidc_client_id="c", oidc_tenant=f.T)
    oidc = OidcSignIn(SimpleNamespace(ctx=SimpleNamespace(store=store), settings=settings))  # type: ignore[arg-type]

    def who(**claims: Any) -> Viewer:
        return oidc._viewer({"sub": "someone", **claims})

    v = who(email="ms.reyes@district.example.org")
    assert (v.role, v.person_id, v.name, v.tenant, v.via) == ("teacher", teacher.id, teacher.given_name + " " + teacher.family_name,
                                                             f.T, "oidc")
    assert who(sub="sub-admin", email="other@else.example").person_id == admin.id and who(sub="sub-admin").role == "admin"
    assert who(email="shared@district.example.org").person_id == aide.id  # the staff one of two sharing an email
    refused = {"a%b@district.example.org": "could not find you", "nobody@district.example.org": "could not find you",
               "xms.reyes@district.example.org": "for teachers and district staff", "twin@district.example.org": "More than one",
               "gone@district.example.org": "not active"}
    for email, says in refused.items():
        with pytest.raises(SignInRefused) as exc:
            who(email=email)
        assert says in exc.value.message, email
    with pytest.raises(SignInRefused):
        who(email="ms.reyes@district.example.org", email_verified=False)
