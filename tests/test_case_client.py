"""The CASE provider client against a mocked remote provider (respx mocks only that peer):
paging CFDocuments, CFPackages, OAuth 2.0 client credentials when the provider asks, errors, and
`tessera import case --url` end to end into a real store."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import respx

from adapters.case.client import CaseClient, ProviderError, provider_base
from adapters.case.equivalence import package_equivalent
from gateway.errors import AuthError, ConfigError, NotFound, TesseraError
from gateway.store.competencies import CompetencyRepository
from gateway.wiring import open_store

FIXTURES = Path(__file__).parent / "fixtures" / "case"
BASE = "https://case.provider.example/ims/case/v1p0"
TOKEN_URL = "https://case.provider.example/oauth/token"
SECRET = "s3cr3t-value-never-shown"


def docs_route(mock: respx.MockRouter, docs: list[dict], *, needs_token: str | None = None) -> respx.Route:
    def answer(request: httpx.Request) -> httpx.Response:
        if needs_token and request.headers.get("Authorization") != f"Bearer {needs_token}":
            return httpx.Response(401, json={"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "token needed"})
        q = parse_qs(request.url.query.decode())
        limit, offset = int(q["limit"][0]), int(q["offset"][0])
        return httpx.Response(200, json={"CFDocuments": docs[offset : offset + limit]}, headers={"X-Total-Count": str(len(docs))})

    return mock.get(f"{BASE}/CFDocuments").mock(side_effect=answer)


def token_route(mock: respx.MockRouter, token: str = "tok-1") -> respx.Route:
    def answer(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(f"client-1:{SECRET}".encode()).decode():
            return httpx.Response(401, json={"error": "invalid_client"})
        assert parse_qs(request.content.decode())["grant_type"] == ["client_credentials"]
        return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    return mock.post(TOKEN_URL).mock(side_effect=answer)


def test_the_base_url_may_be_the_site_or_the_api() -> None:
    assert provider_base("https://x.example/") == provider_base("https://x.example/ims/case/v1p0/") == "https://x.example/ims/case/v1p0"


@respx.mock(assert_all_mocked=True)
def test_documents_are_paged_until_the_total_count(respx_mock: respx.MockRouter) -> None:
    docs = [{"identifier": f"00000000-0000-4000-8000-00000000000{i}", "title": f"F{i}"} for i in range(5)]
    route = docs_route(respx_mock, docs)
    with CaseClient(BASE) as client:
        assert [d["title"] for d in client.documents(page_size=2)] == ["F0", "F1", "F2", "F3", "F4"]
    offsets = [parse_qs(c.request.url.query.decode())["offset"][0] for c in route.calls]
    assert offsets == ["0", "2", "4"]


@respx.mock(assert_all_mocked=True)
def test_client_credentials_are_used_when_the_provider_asks_and_the_token_is_reused(respx_mock: respx.MockRouter) -> None:
    docs_route(respx_mock, [{"identifier": "a", "title": "A"}], needs_token="tok-1")
    tokens = token_route(respx_mock)
    pkg = respx_mock.get(f"{BASE}/CFPackages/a").mock(side_effect=lambda r: httpx.Response(
        200 if r.headers.get("Authorization") == "Bearer tok-1" else 401, content=b'{"CFDocument": {}}'))
    with CaseClient(BASE, client_id="client-1", client_secret=SECRET, token_url=TOKEN_URL) as client:
        assert [d["title"] for d in client.documents()] == ["A"]
        assert client.package("a") == b'{"CFDocument": {}}'
        assert SECRET not in repr(client)
    assert tokens.call_count == 1 and pkg.call_count == 1


@respx.mock(assert_all_mocked=True)
def test_a_provider_that_asks_for_credentials_we_do_not_have_is_a_clear_error(respx_mock: respx.MockRouter) -> None:
    docs_route(respx_mock, [], needs_token="tok-1")
    with CaseClient(BASE) as client, pytest.raises(AuthError, match="client-secret-env"):
        list(client.documents())


@respx.mock(assert_all_mocked=True)
def test_refused_credentials_are_an_auth_error_that_never_shows_the_secret(respx_mock: respx.MockRouter) -> None:
    docs_route(respx_mock, [], needs_token="tok-1")
    respx_mock.post(TOKEN_URL).mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
    with CaseClient(BASE, client_id="client-1", client_secret=SECRET, token_url=TOKEN_URL) as client:
        with pytest.raises(AuthError) as exc:
            list(client.documents())
    assert "invalid_client" in str(exc.value) and SECRET not in str(exc.value) and SECRET not in repr(exc.value)


@respx.mock(assert_all_mocked=True)
def test_provider_errors_carry_its_imsx_description(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{BASE}/CFPackages/missing").mock(return_value=httpx.Response(
        404, json={"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "Unknown Object"}))
    respx_mock.get(f"{BASE}/CFPackages/broken").mock(return_value=httpx.Response(500, text="oops"))
    respx_mock.get(f"{BASE}/CFPackages/down").mock(side_effect=httpx.ConnectError("refused"))
    with CaseClient(BASE) as client:
        with pytest.raises(NotFound, match="Unknown Object"):
            client.package("missing")
        with pytest.raises(ProviderError, match="HTTP 500"):
            client.package("broken")
        with pytest.raises(ProviderError, match="could not be reached"):
            client.package("down")


def test_half_given_credentials_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        CaseClient(BASE, client_id="client-1")
    with pytest.raises(ConfigError, match="token URL"):
        CaseClient(BASE, client_id="client-1", client_secret=SECRET)


# --- tessera import case --url ------------------------------------------------------------------


@respx.mock(assert_all_mocked=True)
def test_cli_imports_every_document_of_a_provider_with_client_credentials(cli, monkeypatch: pytest.MonkeyPatch,
                                                                           respx_mock: respx.MockRouter) -> None:
    cli("migrate")
    packages = {p["CFDocument"]["identifier"]: p for p in (orjson.loads((FIXTURES / n).read_bytes())
                                                           for n in ("opensalt-test-framework.json", "opensalt-sample-framework.json"))}
    docs_route(respx_mock, [p["CFDocument"] for p in packages.values()], needs_token="tok-1")
    token_route(respx_mock)
    for ident, pkg in packages.items():
        respx_mock.get(f"{BASE}/CFPackages/{ident}").mock(side_effect=lambda r, pkg=pkg: httpx.Response(
            200 if r.headers.get("Authorization") == "Bearer tok-1" else 401, content=orjson.dumps(pkg)))
    monkeypatch.setenv("CASE_SECRET", SECRET)
    result = cli("import", "case", "--url", "https://case.provider.example", "--tenant", "t1",
                 "--client-id", "client-1", "--client-secret-env", "CASE_SECRET", "--token-url", TOKEN_URL)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "2 CFDocument(s)" in result.output
    store = open_store(cli.url)
    try:
        repo = CompetencyRepository.of(store)
        assert len(repo.frameworks("t1")) == 2 and store.records.count("t1", "competency") == 65 + 16
        ordering = next(iter(packages))
        from adapters.case import CaseAdapter

        assert package_equivalent(packages[ordering], CaseAdapter().export_package(store, "t1", ordering)) == []
    finally:
        store.dispose()


def test_cli_takes_secrets_only_from_the_environment(cli) -> None:
    cli("migrate")
    with pytest.raises(TesseraError, match="NOT_SET_VAR"):
        cli("import", "case", "--url", "https://case.provider.example", "--client-id", "c", "--client-secret-env", "NOT_SET_VAR",
            "--token-url", TOKEN_URL)
    result = cli("import", "case", "--url", "https://case.provider.example", "--client-id", "c", code=None)
    assert result.exit_code != 0 and "client-secret-env" in result.output
