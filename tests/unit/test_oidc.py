"""OIDCClient against the fake provider: discovery, authorization URL, code exchange, userinfo, logout."""

from __future__ import annotations

import base64
import time
from types import SimpleNamespace
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, unquote_plus, urlsplit

import jwt
import pytest
import requests

from sso_middleware._config.settings import SSOConfig
from sso_middleware._oidc import client as oidc
from sso_middleware._oidc.client import LoginRequest, OIDCClient
from sso_middleware._oidc.http import ProviderHTTP
from sso_middleware._oidc.id_token import LOGOUT_EVENT, IdentityMismatch
from sso_middleware._oidc.token_endpoint import expires_at
from sso_middleware.errors import (
    AuthFailure,
    InvalidGrant,
    InvalidTokenResponse,
    ProviderBadResponse,
    ProviderError,
    ProviderRefused,
    ProviderTimeout,
    ProviderUnreachable,
    SigningAlgorithmMismatch,
)
from sso_middleware.testing import Clock

from ..fakes import (
    BASE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    FakeProvider,
    RefreshGrant,
    make_response,
    public_jwk,
    rsa_key,
    s256,
)
from ..tokens import ec_jwk, ec_key, forge, sign

SETTINGS: dict[str, Any] = {
    "issuer": ISSUER,
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "base_url": BASE_URL,
    "session_secret": "s" * 40,
}
DISCOVERY = "/.well-known/openid-configuration"


def make_client(provider: FakeProvider, clock: Callable[[], float] = time.time, **overrides: Any) -> OIDCClient:
    """A client for ``provider`` (its transport answers every request), reading the time from ``clock``."""
    config = SSOConfig(**{**SETTINGS, **overrides})
    return OIDCClient(config, http=ProviderHTTP.for_config(config, transport=provider.transport()), clock=clock)


@pytest.fixture
def client(provider: FakeProvider) -> OIDCClient:
    return make_client(provider)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 10_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """Replace the monotonic clock the client's discovery cache uses (only in that module)."""
    fake = FakeMonotonic()
    monkeypatch.setattr(oidc, "time", SimpleNamespace(monotonic=fake.monotonic, time=__import__("time").time))
    return fake


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def single(url: str) -> dict[str, str]:
    query = query_of(url)
    assert all(len(values) == 1 for values in query.values()), query
    return {key: values[0] for key, values in query.items()}


def start_login(client: OIDCClient, provider: FakeProvider, user: str = "alice") -> tuple[LoginRequest, str]:
    """Run the browser's part: authorization request, approval; returns the login and the code."""
    login = client.new_login_request()
    callback = provider.authorize(client.authorization_url(login, prompt=None, connection=None), user=user)
    return login, single(callback)["code"]


def sign_in(client: OIDCClient, provider: FakeProvider) -> Any:
    login, code = start_login(client, provider)
    return client.sign_in(code, login.nonce, login.code_verifier)


def form(request: requests.PreparedRequest) -> dict[str, str]:
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
    parsed = parse_qs(body, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {key: values[0] for key, values in parsed.items()}


def failure(call: Any, *args: Any) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        call(*args)
    for secret in (CLIENT_SECRET, "s" * 40):
        assert secret not in str(caught.value)
    return caught.value


# -- discovery ----------------------------------------------------------------------


def test_discovery_is_fetched_once_and_cached(client: OIDCClient, provider: FakeProvider) -> None:
    assert provider.calls == []  # lazy
    for _ in range(20):
        client.metadata()
        client.authorization_url(client.new_login_request(), prompt=None, connection=None)
    assert len(provider.requests_to(DISCOVERY)) == 1
    assert provider.requests_to(DISCOVERY)[0].url == "https://op.example/.well-known/openid-configuration"
    metadata = client.metadata()
    assert metadata.issuer == ISSUER
    assert metadata.token_endpoint == "https://op.example/oauth/token"
    assert metadata.iss_parameter_supported is True


def test_discovery_is_refetched_after_its_ttl(provider: FakeProvider, monotonic: FakeMonotonic) -> None:
    client = make_client(provider, discovery_ttl=100)
    client.metadata()
    monotonic.now += 99
    client.metadata()
    assert len(provider.requests_to(DISCOVERY)) == 1
    monotonic.now += 1
    client.metadata()
    assert len(provider.requests_to(DISCOVERY)) == 2


def test_failed_discovery_refresh_keeps_the_cached_metadata(provider: FakeProvider,
                                                             monotonic: FakeMonotonic) -> None:
    client = make_client(provider, discovery_ttl=100)
    first = client.metadata()
    provider.fail[DISCOVERY] = 503
    monotonic.now += 101
    assert client.metadata() == first


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("https://evil.example/", id="other-host"),
        pytest.param("https://op.example", id="missing-trailing-slash"),
        pytest.param("https://op.example//", id="extra-trailing-slash"),
        pytest.param("https://OP.example/", id="case"),
        pytest.param("http://op.example/", id="http"),
        pytest.param(None, id="missing"),
        pytest.param(["https://op.example/"], id="list"),
    ],
)
def test_discovery_issuer_must_match_exactly(provider: FakeProvider, client: OIDCClient, issuer: Any) -> None:
    provider.discovery_overrides["issuer"] = issuer
    with pytest.raises(ProviderError) as caught:
        client.metadata()
    assert caught.value.code == "provider_bad_response"


def test_configured_issuer_without_slash_needs_discovery_without_slash(provider: FakeProvider) -> None:
    client = make_client(provider, issuer="https://op.example")
    with pytest.raises(ProviderError) as caught:
        client.metadata()  # the fake announces "https://op.example/"
    assert caught.value.code == "provider_bad_response"


ENDPOINTS = ["authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint"]


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in ENDPOINTS])
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://op.example/x", id="http"),
        pytest.param("http://127.0.0.1:3000/x", id="http-loopback"),
        pytest.param("/relative", id="relative"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("https://user:pw@op.example/x", id="credentials"),
        pytest.param(42, id="number"),
    ],
)
def test_bad_endpoints_in_discovery_are_refused(provider: FakeProvider, name: str, url: Any) -> None:
    provider.discovery_overrides[name] = url
    with pytest.raises(ProviderError) as caught:
        make_client(provider).metadata()
    assert caught.value.code == "provider_bad_response"


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in ENDPOINTS])
def test_http_endpoint_refused_for_an_https_issuer_even_with_allow_insecure_http(
    provider: FakeProvider, name: str
) -> None:
    provider.discovery_overrides[name] = "http://127.0.0.1:3000/x"
    client = make_client(provider, allow_insecure_http=True)
    with pytest.raises(ProviderError) as caught:
        client.metadata()
    assert caught.value.code == "provider_bad_response"


def test_http_loopback_issuer_with_allow_insecure_http() -> None:
    provider = FakeProvider(issuer="http://127.0.0.1:3000/")
    client = make_client(provider, issuer="http://127.0.0.1:3000/", base_url="http://127.0.0.1:5000",
                         allow_insecure_http=True)
    assert client.metadata().token_endpoint == "http://127.0.0.1:3000/oauth/token"
    url = client.authorization_url(client.new_login_request(), prompt="none", connection=None)
    assert url.startswith("http://127.0.0.1:3000/authorize?")
    result = sign_in(client, provider)
    assert result.claims["sub"] == "alice"


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_required_endpoints_missing(provider: FakeProvider, client: OIDCClient, name: str) -> None:
    provider.discovery_overrides[name] = None
    with pytest.raises(ProviderError) as caught:
        client.metadata()
    assert caught.value.code == "provider_bad_response"


def test_optional_endpoints_may_be_missing(provider: FakeProvider, client: OIDCClient) -> None:
    provider.discovery_overrides.update(userinfo_endpoint=None, end_session_endpoint=None,
                                        authorization_response_iss_parameter_supported=None)
    metadata = client.metadata()
    assert metadata.userinfo_endpoint is None
    assert metadata.end_session_endpoint is None
    assert metadata.iss_parameter_supported is False


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param(404, "provider_unreachable", id="404"),
        pytest.param(500, "provider_unreachable", id="500"),
        pytest.param(requests.ConnectionError("refused"), "provider_unreachable", id="connection-error"),
        pytest.param(requests.Timeout("slow"), "provider_timeout", id="timeout"),
        pytest.param(lambda request: make_response(request, 200, b"<html>"), "provider_bad_response",
                     id="not-json"),
        pytest.param(lambda request: make_response(request, 200, b"[1, 2]"), "provider_bad_response",
                     id="json-list"),
    ],
)
def test_discovery_failures(provider: FakeProvider, client: OIDCClient, fault: Any, code: str) -> None:
    provider.fail[DISCOVERY] = fault
    with pytest.raises(ProviderError) as caught:
        client.metadata()
    assert caught.value.code == code


def test_discovery_failure_is_remembered_then_retried(provider: FakeProvider, client: OIDCClient,
                                                      monotonic: FakeMonotonic) -> None:
    provider.fail[DISCOVERY] = 503
    for _ in range(10):
        with pytest.raises(ProviderError):
            client.metadata()
    assert len(provider.requests_to(DISCOVERY)) == 1
    monotonic.now += oidc.DISCOVERY_RETRY_SECONDS - 0.1
    with pytest.raises(ProviderError):
        client.metadata()
    assert len(provider.requests_to(DISCOVERY)) == 1
    del provider.fail[DISCOVERY]
    monotonic.now += 0.1
    assert client.metadata().issuer == ISSUER
    assert len(provider.requests_to(DISCOVERY)) == 2


def test_discovery_failure_is_remembered_in_real_time(provider: FakeProvider, client: OIDCClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(oidc, "DISCOVERY_RETRY_SECONDS", 0.05)
    provider.fail[DISCOVERY] = requests.ConnectionError("down")
    with pytest.raises(ProviderError):
        client.metadata()
    with pytest.raises(ProviderError):
        client.metadata()
    assert len(provider.requests_to(DISCOVERY)) == 1
    del provider.fail[DISCOVERY]
    time.sleep(0.06)
    client.metadata()
    assert len(provider.requests_to(DISCOVERY)) == 2


# -- authorization URL --------------------------------------------------------------


def test_new_login_request_is_fresh_and_pkce_s256() -> None:
    logins = [OIDCClient.new_login_request() for _ in range(20)]
    assert len({login.state for login in logins}) == 20
    assert len({login.nonce for login in logins}) == 20
    assert len({login.code_verifier for login in logins}) == 20
    for login in logins:
        assert 43 <= len(login.code_verifier) <= 128
        assert login.code_challenge == s256(login.code_verifier)
        assert len(login.state) >= 32 and len(login.nonce) >= 32


def test_authorization_url_carries_the_protocol_parameters(client: OIDCClient) -> None:
    login = client.new_login_request()
    url = client.authorization_url(login, prompt=None, connection=None)
    assert url.startswith("https://op.example/authorize?")
    params = single(url)
    assert params == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "https://app2.example/auth/callback",
        "scope": "openid profile email",
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": login.code_challenge,
        "code_challenge_method": "S256",
    }
    assert login.code_verifier not in url


def test_authorization_url_optional_parameters_only_when_set(provider: FakeProvider) -> None:
    client = make_client(provider, audience="https://api.example/", scope="openid email")
    login = client.new_login_request()
    params = single(client.authorization_url(login, prompt="none", connection="Username-Password-Authentication"))
    assert params["prompt"] == "none"
    assert params["connection"] == "Username-Password-Authentication"
    assert params["audience"] == "https://api.example/"
    assert params["scope"] == "openid email"
    params = single(client.authorization_url(login, prompt="", connection=""))
    assert not {"prompt", "connection"} & set(params)


def test_authorization_url_encodes_values(client: OIDCClient) -> None:
    login = client.new_login_request()
    url = client.authorization_url(login, prompt=None, connection="a&prompt=login#x")
    params = single(url)
    assert params["connection"] == "a&prompt=login#x"
    assert "prompt" not in params
    assert "#" not in url


def test_authorization_endpoint_with_a_query(provider: FakeProvider) -> None:
    provider.discovery_overrides["authorization_endpoint"] = "https://op.example/authorize?tenant=t1"
    client = make_client(provider)
    params = single(client.authorization_url(client.new_login_request(), prompt=None, connection=None))
    assert params["tenant"] == "t1"
    assert params["response_type"] == "code"


# -- code exchange -----------------------------------------------------------------


def test_sign_in_with_client_secret_basic(client: OIDCClient, provider: FakeProvider) -> None:
    login, code = start_login(client, provider)
    result = client.sign_in(code, login.nonce, login.code_verifier)
    assert result.claims["sub"] == "alice"
    assert result.userinfo["email"] == "alice@example.com"
    assert result.access_token.startswith("at-")
    [request] = provider.requests_to("/oauth/token")
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    user, _, password = base64.b64decode(request.headers["Authorization"][len("Basic "):]).decode().partition(":")
    assert (user, password) == (CLIENT_ID, CLIENT_SECRET)
    body = form(request)
    assert body == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://app2.example/auth/callback",
        "code_verifier": login.code_verifier,
    }
    assert CLIENT_SECRET not in str(request.body)


def test_sign_in_with_client_secret_post(provider: FakeProvider) -> None:
    client = make_client(provider, token_endpoint_auth_method="client_secret_post")
    login, code = start_login(client, provider)
    assert client.sign_in(code, login.nonce, login.code_verifier).claims["sub"] == "alice"
    [request] = provider.requests_to("/oauth/token")
    assert "Authorization" not in request.headers
    body = form(request)
    assert body["client_id"] == CLIENT_ID
    assert body["client_secret"] == CLIENT_SECRET
    assert body["code_verifier"] == login.code_verifier
    assert body["grant_type"] == "authorization_code"


@pytest.mark.parametrize(
    ("client_id", "client_secret"),
    [
        pytest.param("app:2", "se:cr:et", id="colons"),
        pytest.param("app 2", "s e+c%r&e=t/?", id="space-plus-percent-amp"),
        pytest.param("app\u00e9", "s\u00e9cr\u00e8t-\u2603", id="non-ascii"),
    ],
)
def test_basic_auth_form_encodes_id_and_secret(provider: FakeProvider, client_id: str, client_secret: str) -> None:
    # RFC 6749 section 2.3.1: both are application/x-www-form-urlencoded before Basic encoding.
    client = make_client(provider, client_id=client_id, client_secret=client_secret)
    provider.client_id = client_id
    login, code = start_login(client, provider)
    with pytest.raises(AuthFailure):  # the fake provider does not decode them; only the request matters
        client.sign_in(code, login.nonce, login.code_verifier)
    [request] = provider.requests_to("/oauth/token")
    decoded = base64.b64decode(request.headers["Authorization"][len("Basic "):]).decode("ascii")
    assert decoded.count(":") == 1
    user, _, password = decoded.partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, client_secret)


def test_wrong_code_is_a_provider_error(client: OIDCClient, provider: FakeProvider) -> None:
    login, _ = start_login(client, provider)
    error = failure(client.sign_in, "not-the-code", login.nonce, login.code_verifier)
    assert error.code == "provider_error:invalid_grant"
    assert not provider.requests_to("/userinfo")


def test_wrong_code_verifier_is_refused_by_the_provider(client: OIDCClient, provider: FakeProvider) -> None:
    login, code = start_login(client, provider)
    error = failure(client.sign_in, code, login.nonce, OIDCClient.new_login_request().code_verifier)
    assert error.code == "provider_error:invalid_grant"


def test_code_is_single_use_at_the_provider(client: OIDCClient, provider: FakeProvider) -> None:
    login, code = start_login(client, provider)
    client.sign_in(code, login.nonce, login.code_verifier)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "provider_error:invalid_grant"


def test_wrong_client_secret(provider: FakeProvider) -> None:
    client = make_client(provider, client_secret="not-the-secret")
    login, code = start_login(client, provider)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "provider_error:invalid_client"


def token_fault(status: int, body: bytes) -> Any:
    return lambda request: make_response(request, status, body)


@pytest.mark.parametrize(
    ("fault", "code", "kind"),
    [
        pytest.param(500, "provider_unreachable", ProviderUnreachable, id="500-json"),
        pytest.param(503, "provider_unreachable", ProviderUnreachable, id="503-json"),
        pytest.param(token_fault(502, b"<html>Bad gateway</html>"), "provider_unreachable", ProviderUnreachable,
                     id="502-html"),
        pytest.param(token_fault(200, b"access_token=x&token_type=bearer"), "provider_bad_response",
                     ProviderBadResponse, id="200-form-encoded"),
        pytest.param(token_fault(200, b"[]"), "invalid_token_response", InvalidTokenResponse, id="200-json-list"),
        pytest.param(token_fault(400, b'{"error": "invalid_request"}'), "provider_error:invalid_request",
                     ProviderRefused, id="400-error"),
        pytest.param(token_fault(400, b'{"error": "<script>alert(1)</script>"}'), "provider_error:scriptalert1script",
                     ProviderRefused, id="400-hostile-error"),
        pytest.param(token_fault(403, b"{}"), "provider_error:http_403", ProviderRefused, id="403-no-error"),
        pytest.param(token_fault(200, b'{"error": "access_denied"}'), "provider_error:access_denied", ProviderRefused,
                     id="200-with-error"),
        pytest.param(token_fault(302, b"{}"), "provider_error:http_302", ProviderRefused, id="redirect"),
        pytest.param(requests.ConnectionError("reset"), "provider_unreachable", ProviderUnreachable, id="connection"),
        pytest.param(requests.ReadTimeout("slow"), "provider_timeout", ProviderTimeout, id="timeout"),
    ],
)
def test_token_endpoint_failures(client: OIDCClient, provider: FakeProvider, fault: Any, code: str,
                                 kind: type) -> None:
    login, token_code = start_login(client, provider)
    provider.fail["/oauth/token"] = fault
    error = failure(client.sign_in, token_code, login.nonce, login.code_verifier)
    assert (type(error), error.code) == (kind, code)
    assert not provider.requests_to("/userinfo")


def scripted_token_response(provider: FakeProvider, login: LoginRequest, **changes: Any) -> None:
    response: dict[str, Any] = {
        "access_token": "at-scripted",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": provider.make_id_token(nonce=login.nonce),
    }
    response.update(changes)
    provider.token_response = {key: value for key, value in response.items() if value is not None}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"token_type": "mac"}, id="token-type-mac"),
        pytest.param({"token_type": None}, id="token-type-missing"),
        pytest.param({"token_type": "DPoP"}, id="token-type-dpop"),
        pytest.param({"id_token": None}, id="id-token-missing"),
        pytest.param({"id_token": 42}, id="id-token-number"),
        pytest.param({"access_token": None}, id="access-token-missing"),
        pytest.param({"access_token": ["x"]}, id="access-token-list"),
    ],
)
def test_invalid_token_responses(client: OIDCClient, provider: FakeProvider, changes: dict[str, Any]) -> None:
    login, code = start_login(client, provider)
    scripted_token_response(provider, login, **changes)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "invalid_token_response"
    assert not provider.requests_to("/userinfo")


def test_bearer_token_type_is_case_insensitive(client: OIDCClient, provider: FakeProvider) -> None:
    login, code = start_login(client, provider)
    scripted_token_response(provider, login, token_type="bearer")
    provider.userinfo = {"sub": "alice"}
    provider._access_tokens["at-scripted"] = "alice"
    assert client.sign_in(code, login.nonce, login.code_verifier).access_token == "at-scripted"


# -- ID token and userinfo -----------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "someone-else"}, id="aud"),
        pytest.param({"iss": "https://evil.example/"}, id="iss"),
        pytest.param({"nonce": "replayed"}, id="nonce"),
        pytest.param({"exp": 1}, id="expired"),
        pytest.param({"sub": ""}, id="empty-sub"),
        pytest.param({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, id="at_hash"),
    ],
)
def test_bad_id_token_stops_before_userinfo(client: OIDCClient, provider: FakeProvider,
                                            overrides: dict[str, Any]) -> None:
    provider.id_token_overrides = overrides
    login, code = start_login(client, provider)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "invalid_id_token"
    assert len(provider.requests_to("/oauth/token")) == 1
    assert provider.requests_to("/userinfo") == []


def test_id_token_signed_by_another_key_stops_before_userinfo(client: OIDCClient, provider: FakeProvider) -> None:
    provider.id_token_key = rsa_key("attacker")
    login, code = start_login(client, provider)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "invalid_id_token"
    assert provider.requests_to("/userinfo") == []


def test_nonce_of_another_login_is_refused(client: OIDCClient, provider: FakeProvider) -> None:
    login, code = start_login(client, provider)
    other = client.new_login_request()
    assert failure(client.sign_in, code, other.nonce, login.code_verifier).code == "invalid_id_token"


def test_jwks_is_fetched_from_discovery_and_cached(client: OIDCClient, provider: FakeProvider) -> None:
    sign_in(client, provider)
    sign_in(client, provider)
    assert len(provider.requests_to("/.well-known/jwks.json")) == 1
    assert len(provider.requests_to(DISCOVERY)) == 1


def test_key_rotation_is_picked_up(client: OIDCClient, provider: FakeProvider) -> None:
    sign_in(client, provider)
    provider.kid = "key-2"
    provider.id_token_key = rsa_key("rotated")
    provider.jwks_keys = [public_jwk(rsa_key("rotated"), "key-2")]
    assert sign_in(client, provider).claims["sub"] == "alice"
    assert len(provider.requests_to("/.well-known/jwks.json")) == 2


def test_userinfo_uses_the_bearer_access_token(client: OIDCClient, provider: FakeProvider) -> None:
    result = sign_in(client, provider)
    [request] = provider.requests_to("/userinfo")
    assert request.method == "GET"
    assert request.headers["Authorization"] == f"Bearer {result.access_token}"
    assert result.access_token not in str(request.url)


@pytest.mark.parametrize(
    "userinfo",
    [
        pytest.param({"sub": "bob", "email": "bob@example.com"}, id="other-sub"),
        pytest.param({"email": "alice@example.com"}, id="missing-sub"),
        pytest.param({"sub": "ALICE"}, id="case"),
        pytest.param({"sub": ["alice"]}, id="list"),
    ],
)
def test_userinfo_sub_mismatch(client: OIDCClient, provider: FakeProvider, userinfo: dict[str, Any]) -> None:
    provider.userinfo = userinfo
    login, code = start_login(client, provider)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "userinfo_mismatch"


@pytest.mark.parametrize(
    ("fault", "code", "kind"),
    [
        pytest.param(500, "provider_unreachable", ProviderUnreachable, id="500"),
        pytest.param(401, "provider_bad_response", ProviderBadResponse, id="401"),
        pytest.param(token_fault(200, b"[1]"), "provider_bad_response", ProviderBadResponse, id="json-list"),
        pytest.param(token_fault(200, b"eyJhbGciOi.x.y"), "provider_bad_response", ProviderBadResponse, id="jwt"),
        pytest.param(requests.ConnectionError("reset"), "provider_unreachable", ProviderUnreachable, id="connection"),
    ],
)
def test_userinfo_failures(client: OIDCClient, provider: FakeProvider, fault: Any, code: str, kind: type) -> None:
    provider.fail["/userinfo"] = fault
    login, token_code = start_login(client, provider)
    error = failure(client.sign_in, token_code, login.nonce, login.code_verifier)
    assert (type(error), error.code) == (kind, code)


def test_no_userinfo_endpoint_means_no_userinfo_call(provider: FakeProvider) -> None:
    provider.discovery_overrides["userinfo_endpoint"] = None
    client = make_client(provider)
    result = sign_in(client, provider)
    assert result.userinfo == {}
    assert result.claims["sub"] == "alice"
    assert provider.requests_to("/userinfo") == []


# -- RFC 9207 ------------------------------------------------------------------------


def test_response_issuer_matching_is_accepted(client: OIDCClient) -> None:
    client.check_response_issuer(ISSUER)


@pytest.mark.parametrize(
    "iss",
    [
        pytest.param("https://evil.example/", id="other"),
        pytest.param("https://op.example", id="no-trailing-slash"),
        pytest.param("", id="empty"),
        pytest.param(ISSUER + " ", id="trailing-space"),
    ],
)
def test_wrong_response_issuer_is_refused(client: OIDCClient, iss: str) -> None:
    assert failure(client.check_response_issuer, iss).code == "issuer_mismatch"


def test_missing_response_issuer_refused_when_advertised(client: OIDCClient) -> None:
    assert failure(client.check_response_issuer, None).code == "issuer_mismatch"


def test_missing_response_issuer_accepted_when_not_advertised(provider: FakeProvider) -> None:
    provider.discovery_overrides["authorization_response_iss_parameter_supported"] = None
    make_client(provider).check_response_issuer(None)
    provider.discovery_overrides["authorization_response_iss_parameter_supported"] = "true"  # not a JSON true
    make_client(provider).check_response_issuer(None)


def test_wrong_response_issuer_refused_even_when_not_advertised(provider: FakeProvider) -> None:
    provider.discovery_overrides["authorization_response_iss_parameter_supported"] = False
    assert failure(make_client(provider).check_response_issuer, "https://evil.example/").code == "issuer_mismatch"


# -- logout ----------------------------------------------------------------------------


def test_end_session_url_with_an_end_session_endpoint(client: OIDCClient) -> None:
    url = client.end_session_url("the.id.token", "https://app2.example/bye")
    assert url is not None
    assert url.startswith("https://op.example/oidc/logout?")
    assert single(url) == {
        "id_token_hint": "the.id.token",
        "post_logout_redirect_uri": "https://app2.example/bye",
        "client_id": CLIENT_ID,
    }


def test_end_session_url_without_id_token_hint(client: OIDCClient) -> None:
    url = client.end_session_url(None, "https://app2.example/")
    assert url is not None
    assert "id_token_hint" not in single(url)


def test_end_session_endpoint_with_a_query(provider: FakeProvider) -> None:
    provider.discovery_overrides["end_session_endpoint"] = "https://op.example/logout?tenant=t1"
    url = make_client(provider).end_session_url("tok", "https://app2.example/")
    assert url is not None
    assert single(url)["tenant"] == "t1"
    assert single(url)["client_id"] == CLIENT_ID


def auth0_client() -> tuple[OIDCClient, FakeProvider]:
    provider = FakeProvider(issuer="https://tenant.eu.auth0.com/", end_session=False)
    return make_client(provider, issuer="", domain="tenant.eu.auth0.com"), provider


def test_auth0_legacy_logout_without_end_session_endpoint() -> None:
    client, _ = auth0_client()
    url = client.end_session_url("the.id.token", "https://app2.example/bye?x=1")
    assert url is not None
    assert url.startswith("https://tenant.eu.auth0.com/v2/logout?")
    assert single(url) == {"client_id": CLIENT_ID, "returnTo": "https://app2.example/bye?x=1"}


def test_auth0_with_an_end_session_endpoint_uses_it() -> None:
    client, provider = auth0_client()
    provider.end_session = True
    url = client.end_session_url("the.id.token", "https://app2.example/")
    assert url is not None
    assert url.startswith("https://tenant.eu.auth0.com/oidc/logout?")


def test_generic_provider_without_end_session_endpoint(provider: FakeProvider) -> None:
    provider.end_session = False
    assert make_client(provider).end_session_url("the.id.token", "https://app2.example/") is None


def test_end_session_url_when_the_provider_is_unreachable(provider: FakeProvider) -> None:
    provider.fail[DISCOVERY] = requests.ConnectionError("down")
    assert make_client(provider).end_session_url("the.id.token", "https://app2.example/") is None



# -- code exchange: the token's lifetime and the refresh token ------------------------


OFFLINE = "openid profile email offline_access"


def test_sign_in_without_offline_access_gets_no_refresh_token(client: OIDCClient, provider: FakeProvider) -> None:
    result = sign_in(client, provider)
    assert result.refresh_token is None
    assert provider.live_refresh_tokens() == []


def test_sign_in_with_offline_access_keeps_the_refresh_token_and_expiry() -> None:
    now = 1_900_000_000.0
    provider = FakeProvider(clock=Clock(now))
    client = make_client(provider, scope=OFFLINE, clock=provider.clock)
    result = sign_in(client, provider)
    assert result.refresh_token is not None and result.refresh_token.startswith("rt-")
    assert provider.live_refresh_tokens() == [result.refresh_token]
    assert result.expires_at == now + 3600
    assert provider.last_grant is not None and "offline_access" in provider.last_grant.params["scope"].split()


# -- refresh (RFC 6749 section 6) ------------------------------------------------------


def refreshable(provider: FakeProvider, **overrides: Any) -> tuple[OIDCClient, Any]:
    """A client signed in with ``offline_access`` (so holding a refresh token) and its sign-in result."""
    client = make_client(provider, **{"scope": OFFLINE, **overrides})
    result = sign_in(client, provider)
    assert result.refresh_token is not None
    provider.calls.clear()
    return client, result


def test_refresh_request_with_client_secret_basic(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider)
    result = client.refresh(signed_in.refresh_token, signed_in.id_token)
    assert result.access_token.startswith("at-") and result.access_token != signed_in.access_token
    [request] = provider.calls  # discovery is cached: one call, to the token endpoint
    assert request.url == "https://op.example/oauth/token"
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    user, _, password = base64.b64decode(request.headers["Authorization"][len("Basic "):]).decode().partition(":")
    assert (user, password) == (CLIENT_ID, CLIENT_SECRET)
    # RFC 6749 section 2.3.1: with HTTP Basic, no client credentials in the body; no scope (the original grant's).
    assert form(request) == {"grant_type": "refresh_token", "refresh_token": signed_in.refresh_token}
    assert CLIENT_SECRET not in str(request.body)
    assert signed_in.refresh_token not in str(request.url)


def test_refresh_request_with_client_secret_post(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider, token_endpoint_auth_method="client_secret_post")
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).access_token.startswith("at-")
    [request] = provider.requests_to("/oauth/token")
    assert "Authorization" not in request.headers
    assert form(request) == {"grant_type": "refresh_token", "refresh_token": signed_in.refresh_token,
                             "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert signed_in.refresh_token not in str(request.url)


def test_refresh_basic_auth_form_encodes_id_and_secret(provider: FakeProvider) -> None:
    client_id, client_secret = "app:2 x", "s e+c%r&e=t:/?"
    provider.client_id, provider.client_secret = client_id, client_secret
    client = make_client(provider, scope=OFFLINE, client_id=client_id, client_secret=client_secret)
    provider.refresh_tokens["rt-known"] = RefreshGrant(client_id=client_id, sub="alice", scope=OFFLINE,
                                                       auth_time=None, sid=None, family="f")
    with pytest.raises(AuthFailure):  # the fake provider does not form-decode them; only the request matters
        client.refresh("rt-known", "x.y.z")
    [request] = provider.requests_to("/oauth/token")
    decoded = base64.b64decode(request.headers["Authorization"][len("Basic "):]).decode("ascii")
    assert decoded.count(":") == 1
    user, _, password = decoded.partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, client_secret)
    assert "client_id" not in form(request)


def test_a_rotated_refresh_token_is_returned_and_the_old_one_is_used_up(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider)
    first = client.refresh(signed_in.refresh_token, signed_in.id_token)
    assert first.refresh_token is not None and first.refresh_token != signed_in.refresh_token
    assert first.id_token is None  # the fake provider sends no ID token unless asked
    second = client.refresh(first.refresh_token, signed_in.id_token)
    assert second.refresh_token not in (None, first.refresh_token, signed_in.refresh_token)
    reused = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (type(reused), reused.code) == (InvalidGrant, "provider_error:invalid_grant")
    assert provider.refreshes == 2 and provider.refresh_requests == 3


def test_a_kept_refresh_token_is_reported_as_none(provider: FakeProvider) -> None:
    provider.rotate_refresh_tokens = False
    client, signed_in = refreshable(provider)
    first = client.refresh(signed_in.refresh_token, signed_in.id_token)
    assert first.refresh_token is None  # the caller keeps using its refresh token
    second = client.refresh(signed_in.refresh_token, signed_in.id_token)
    assert second.access_token not in (first.access_token, signed_in.access_token)


def test_the_refresh_response_may_return_the_same_refresh_token(provider: FakeProvider) -> None:
    provider.rotate_refresh_tokens = False
    client, signed_in = refreshable(provider)
    provider.refresh_changes = {"refresh_token": signed_in.refresh_token}
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).refresh_token == signed_in.refresh_token


NOW = 1_900_000_000.0


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        pytest.param(3600, NOW + 3600, id="int"),
        pytest.param(120, NOW + 120, id="short"),
        pytest.param("3600", NOW + 3600, id="numeric-string"),
        pytest.param(90.0, NOW + 90, id="float"),
        pytest.param(-5, NOW, id="negative-means-expired"),
        pytest.param(None, None, id="missing"),
        pytest.param(True, None, id="true"),
        pytest.param(False, None, id="false"),
    ],
)
def test_refresh_expires_in_variants(provider: FakeProvider, expires_in: Any, expected: Any) -> None:
    clock = Clock()
    client, signed_in = refreshable(provider, clock=clock)
    clock.now = NOW
    provider.refresh_changes = {"expires_in": expires_in}
    if expires_in is None:
        provider.expires_in = None
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).expires_at == expected


def test_refresh_expires_in_zero_means_expired_now(provider: FakeProvider) -> None:
    clock = Clock()
    client, signed_in = refreshable(provider, clock=clock)
    clock.now = NOW
    provider.refresh_changes = {"expires_in": 0}
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).expires_at == NOW


@pytest.mark.parametrize(
    "expires_in",
    [
        pytest.param("soon", id="word"),
        pytest.param(float("inf"), id="infinite"),
        pytest.param(float("nan"), id="nan"),
        pytest.param([3600], id="list"),
        pytest.param({"s": 1}, id="object"),
    ],
)
def test_refresh_with_an_unusable_expires_in_is_an_invalid_response(provider: FakeProvider, expires_in: Any) -> None:
    """Like the code exchange (tests/test_adversarial.py): oauthlib refuses these before _expires_at sees them."""
    client, signed_in = refreshable(provider)
    provider.refresh_changes = {"expires_in": expires_in}
    error = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (type(error), error.code) == (InvalidTokenResponse, "invalid_token_response")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="true"),
        pytest.param("soon", id="word"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(None, id="none"),
        pytest.param([1], id="list"),
    ],
)
def test_expires_at_helper_refuses_what_is_not_a_finite_number(value: Any) -> None:
    assert expires_at({"expires_in": value}, NOW) is None


def test_expires_at_helper_numbers() -> None:
    assert expires_at({"expires_in": 10}, NOW) == NOW + 10
    assert expires_at({"expires_in": 2.5}, NOW) == NOW + 2.5
    assert expires_at({"expires_in": -1}, NOW) == NOW
    assert expires_at({"expires_in": 0}, NOW) == NOW
    assert expires_at({"expires_in": "3600"}, NOW) == NOW + 3600  # some providers send a string
    assert expires_at({}, NOW) is None


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"access_token": None}, id="access-token-missing"),
        pytest.param({"access_token": ""}, id="access-token-empty"),
        pytest.param({"access_token": 42}, id="access-token-number"),
        pytest.param({"token_type": None}, id="token-type-missing"),
        pytest.param({"token_type": "mac"}, id="token-type-mac"),
        pytest.param({"token_type": "DPoP"}, id="token-type-dpop"),
        pytest.param({"refresh_token": 42}, id="refresh-token-number"),
        pytest.param({"refresh_token": ""}, id="refresh-token-empty"),
        pytest.param({"id_token": 42}, id="id-token-number"),
        pytest.param({"id_token": ""}, id="id-token-empty"),
    ],
)
def test_invalid_refresh_responses(provider: FakeProvider, changes: dict[str, Any]) -> None:
    client, signed_in = refreshable(provider)
    provider.refresh_changes = changes
    error = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (type(error), error.code) == (InvalidTokenResponse, "invalid_token_response")


def test_refresh_token_type_is_case_insensitive(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider)
    provider.refresh_changes = {"token_type": "bEaReR"}
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).access_token.startswith("at-")


def test_a_revoked_refresh_token_is_invalid_grant(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider)
    assert provider.revoke(signed_in.refresh_token) == 1
    error = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (type(error), error.code) == (InvalidGrant, "provider_error:invalid_grant")
    assert signed_in.refresh_token not in str(error)
    assert provider.refreshes == 0 and provider.refresh_requests == 1


def test_an_unknown_refresh_token_is_invalid_grant(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider)
    error = failure(client.refresh, "rt-never-issued", signed_in.id_token)
    assert error.code == "provider_error:invalid_grant"
    assert not isinstance(error, ProviderError)


def test_refresh_with_a_wrong_client_secret(provider: FakeProvider) -> None:
    client, signed_in = refreshable(provider)
    provider.client_secret = "rotated-at-the-provider"
    assert failure(client.refresh, signed_in.refresh_token, signed_in.id_token).code == "provider_error:invalid_client"
    assert provider.refresh_requests == 0  # refused at client authentication


@pytest.mark.parametrize(
    ("fault", "code", "kind"),
    [
        pytest.param(500, "provider_unreachable", ProviderUnreachable, id="500-json"),
        pytest.param(503, "provider_unreachable", ProviderUnreachable, id="503-json"),
        pytest.param(token_fault(502, b"<html>Bad gateway</html>"), "provider_unreachable", ProviderUnreachable,
                     id="502-html"),
        pytest.param(token_fault(504, b""), "provider_unreachable", ProviderUnreachable, id="504-empty"),
        pytest.param(token_fault(429, b'{"error": "too_many_requests"}'), "provider_unreachable", ProviderUnreachable,
                     id="429-rate-limited"),
        pytest.param(token_fault(200, b"access_token=x&token_type=bearer"), "provider_bad_response",
                     ProviderBadResponse, id="200-form-encoded"),
        pytest.param(token_fault(200, b"[]"), "invalid_token_response", InvalidTokenResponse, id="200-json-list"),
        pytest.param(token_fault(400, b'{"error": "invalid_grant", "error_description": "revoked"}'),
                     "provider_error:invalid_grant", InvalidGrant, id="400-invalid-grant"),
        pytest.param(token_fault(400, b'{"error": "unauthorized_client"}'), "provider_error:unauthorized_client",
                     ProviderRefused, id="400-unauthorized-client"),
        pytest.param(token_fault(200, b'{"error": "invalid_grant"}'), "provider_error:invalid_grant", InvalidGrant,
                     id="200-with-error"),
        pytest.param(requests.ConnectionError("reset"), "provider_unreachable", ProviderUnreachable, id="connection"),
        pytest.param(requests.ConnectTimeout("no route"), "provider_timeout", ProviderTimeout, id="connect-timeout"),
        pytest.param(requests.ReadTimeout("slow"), "provider_timeout", ProviderTimeout, id="read-timeout"),
    ],
)
def test_refresh_failures(provider: FakeProvider, fault: Any, code: str, kind: type) -> None:
    client, signed_in = refreshable(provider)
    provider.fail["/oauth/token"] = fault
    error = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (type(error), error.code) == (kind, code)
    assert signed_in.refresh_token not in str(error)


def test_refresh_when_discovery_is_down_is_a_provider_error(provider: FakeProvider) -> None:
    provider.fail[DISCOVERY] = requests.ConnectionError("down")
    client = make_client(provider, scope=OFFLINE)
    error = failure(client.refresh, "rt-whatever", "x.y.z")
    assert (type(error), error.code) == (ProviderUnreachable, "provider_unreachable")
    assert provider.requests_to("/oauth/token") == []


# -- a refreshed ID token (Core 1.0 section 12.2) -----------------------------------------


def test_a_refreshed_id_token_is_validated_and_returned(provider: FakeProvider) -> None:
    provider.refresh_id_token = True
    client, signed_in = refreshable(provider)
    result = client.refresh(signed_in.refresh_token, signed_in.id_token)
    assert result.id_token is not None and result.id_token != signed_in.id_token
    claims = jwt.decode(result.id_token, options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["auth_time"] == signed_in.claims["auth_time"]
    assert "nonce" not in claims


def test_a_refreshed_id_token_keeping_the_original_nonce_is_accepted(provider: FakeProvider) -> None:
    provider.refresh_id_token = True
    client, signed_in = refreshable(provider)
    provider.refresh_id_token_overrides = {"nonce": signed_in.claims["nonce"]}
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).id_token is not None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"sub": "bob"}, "sub differs", id="other-sub"),
        pytest.param({"iss": "https://evil.example/"}, "Issuer", id="other-iss"),
        pytest.param({"aud": "someone-else"}, "Audience", id="other-aud"),
        pytest.param({"aud": [CLIENT_ID, "https://api.example"], "azp": CLIENT_ID}, "differs", id="more-aud"),
        pytest.param({"azp": CLIENT_ID}, "azp differs", id="azp-appears"),
        pytest.param({"auth_time": 12345}, "auth_time is not the original", id="new-auth_time"),
        pytest.param({"auth_time": "yesterday"}, "auth_time is not a number", id="auth_time-not-a-number"),
        pytest.param({"nonce": "another-nonce"}, "nonce differs", id="other-nonce"),
        pytest.param({"iat": 1_000_000_000, "exp": 4_000_000_000}, "issued before", id="issued-before-the-original"),
        pytest.param({"exp": 1_000_000_000}, "expired", id="expired"),
        pytest.param({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "at_hash", id="at_hash-of-another-token"),
    ],
)
def test_a_bad_refreshed_id_token_is_refused(provider: FakeProvider, overrides: dict[str, Any], reason: str) -> None:
    provider.refresh_id_token = True
    client, signed_in = refreshable(provider)
    provider.refresh_id_token_overrides = overrides
    error = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert isinstance(error, AuthFailure) and not isinstance(error, ProviderError)
    assert error.code == "invalid_id_token"
    assert reason in error.detail, error.detail
    # Only a token about someone else (Core 12.2) is an IdentityMismatch, which ends the session; a token
    # failing the ordinary checks (issuer, audience, times, at_hash) may be the provider's passing fault.
    assert isinstance(error, IdentityMismatch) == (reason in IDENTITY_REASONS)


IDENTITY_REASONS = {"sub differs", "differs", "azp differs", "auth_time is not the original", "nonce differs",
                    "issued before"}


def test_a_refreshed_id_token_signed_by_another_key_is_refused(provider: FakeProvider) -> None:
    provider.refresh_id_token = True
    client, signed_in = refreshable(provider)
    provider.id_token_key = rsa_key("attacker")
    assert failure(client.refresh, signed_in.refresh_token, signed_in.id_token).code == "invalid_id_token"


def test_a_refreshed_id_token_when_the_jwks_is_down_is_a_provider_error(provider: FakeProvider) -> None:
    """Another worker (no JWKS cached yet) refreshing while the JWKS cannot be fetched: unavailable, not refused."""
    provider.refresh_id_token = True
    _, signed_in = refreshable(provider)
    worker = make_client(provider, scope=OFFLINE)
    provider.fail["/.well-known/jwks.json"] = requests.ConnectionError("down")
    error = failure(worker.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (type(error), error.code) == (ProviderUnreachable, "provider_unreachable")


def test_a_refreshed_id_token_with_a_rotated_key_is_accepted(provider: FakeProvider) -> None:
    provider.refresh_id_token = True
    client, signed_in = refreshable(provider)
    provider.kid = "key-2"
    provider.id_token_key = rsa_key("rotated")
    provider.jwks_keys = [public_jwk(rsa_key("rotated"), "key-2")]
    assert client.refresh(signed_in.refresh_token, signed_in.id_token).id_token is not None


# -- signature algorithms: what the provider advertises (issue 13 item 15) -------------------------


def signing_es256(provider: FakeProvider) -> None:
    """Make the provider sign its ID tokens with ES256 (its JWKS holds the EC key beside the RSA one)."""
    provider.id_token_alg, provider.id_token_key, provider.kid = "ES256", ec_key(), "ec-1"
    provider.jwks_keys = [public_jwk(rsa_key(), "key-1"), ec_jwk(ec_key(), "ec-1")]


def test_an_algorithm_the_provider_does_not_advertise_is_refused(provider: FakeProvider) -> None:
    """Core 3.1.3.7: the ID token's alg is the registered one; ES256 is allowed by us, not advertised by it."""
    signing_es256(provider)
    client = make_client(provider, id_token_algorithms=("RS256", "ES256"))
    login, code = start_login(client, provider)
    error = failure(client.sign_in, code, login.nonce, login.code_verifier)
    assert (error.code, error.detail) == ("invalid_id_token", "algorithm 'ES256' is not accepted")
    assert provider.requests_to("/userinfo") == []


def test_an_advertised_and_allowed_algorithm_is_accepted(provider: FakeProvider) -> None:
    signing_es256(provider)
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    assert sign_in(make_client(provider, id_token_algorithms=("RS256", "ES256")), provider).claims["sub"] == "alice"


@pytest.mark.parametrize("advertised", [None, "RS256", [], [1, None]], ids=["absent", "not-a-list", "empty",
                                                                             "no-strings"])
def test_without_a_usable_advertisement_the_allow_list_alone_decides(provider: FakeProvider,
                                                                     advertised: Any) -> None:
    signing_es256(provider)
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = advertised
    assert sign_in(make_client(provider, id_token_algorithms=("ES256",)), provider).claims["sub"] == "alice"
    assert failure(sign_in, make_client(provider, id_token_algorithms=("RS256",)), provider).code == \
        "invalid_id_token"


def test_the_accepted_algorithms_are_the_intersection_in_the_configured_order(provider: FakeProvider) -> None:
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["ES256", "RS256", "HS256", "none"]
    client = make_client(provider, id_token_algorithms=("PS256", "RS256", "ES256"))
    assert client.signing_algorithms() == ("RS256", "ES256")


def test_an_empty_intersection_fails_before_the_provider_is_visited(provider: FakeProvider) -> None:
    """A configuration error between us and the provider: a clear 502 code, not a 500 and not a loop."""
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["ES384"]
    client = make_client(provider, id_token_algorithms=("RS256", "ES256"))
    with pytest.raises(ProviderError) as caught:
        client.authorization_url(client.new_login_request(), prompt=None, connection=None)
    assert caught.value.code == "signing_algorithm_mismatch"
    assert "id_token_algorithms" in caught.value.detail and "ES384" in caught.value.detail
    from sso_middleware.errors import describe

    status, message, shown = describe("signing_algorithm_mismatch")
    assert (status, shown) == (502, "signing_algorithm_mismatch") and "operator" in message


def test_an_empty_intersection_refuses_tokens_as_a_provider_error(provider: FakeProvider) -> None:
    client = make_client(provider)
    login, code = start_login(client, provider)
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["HS512"]
    client._metadata = None  # the provider changed its advertisement since the sign-in started
    error = failure(client.sign_in, code, login.nonce, login.code_verifier)
    assert (type(error), error.code) == (SigningAlgorithmMismatch, "signing_algorithm_mismatch")
    assert failure(client.validate_logout_token, "a.b.c").code == "signing_algorithm_mismatch"


def test_the_token_rules_are_built_once_per_discovery_document(provider: FakeProvider,
                                                               monotonic: FakeMonotonic) -> None:
    """One TokenRules value per metadata document: the same object while discovery is cached, a new one
    (with the newly advertised algorithms) after discovery was fetched again."""
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    client = make_client(provider, id_token_algorithms=("RS256", "ES256"), discovery_ttl=100, clock_skew=30)
    rules = client.token_rules()
    assert client.token_rules() is rules
    assert (rules.keys, rules.issuer, rules.client_id, rules.client_secret, rules.algorithms, rules.leeway) == (
        client.keys, ISSUER, CLIENT_ID, CLIENT_SECRET, ("RS256", "ES256"), 30)
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["ES256"]
    monotonic.now += 100
    refreshed = client.token_rules()
    assert refreshed is not rules and refreshed.algorithms == ("ES256",)
    assert len(provider.requests_to(DISCOVERY)) == 2


# -- token types and non-ASCII claims through the client (issue 13 items 12 and 16) ----------------


@pytest.mark.parametrize("claims", [{"nonce": "n\u00e9"}, {"at_hash": "\u00e9" * 22}], ids=["nonce", "at_hash"])
def test_non_ascii_nonce_or_at_hash_is_invalid_id_token(client: OIDCClient, provider: FakeProvider,
                                                        claims: dict[str, Any]) -> None:
    provider.id_token_overrides = claims
    login, code = start_login(client, provider)
    assert failure(client.sign_in, code, login.nonce, login.code_verifier).code == "invalid_id_token"


def test_a_logout_token_as_the_refreshed_id_token_is_refused(provider: FakeProvider) -> None:
    """Core 12.2 expects no nonce in a refreshed ID token, so a logout token about the user must fail on type."""
    client, signed_in = refreshable(provider)
    now = int(time.time())
    for typ in ("logout+jwt", None):
        logout = sign({"iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "iat": now, "exp": now + 120,
                       "jti": "j", "sid": "provider-session-1", "events": {LOGOUT_EVENT: {}}}, typ=typ)
        provider.refresh_changes = {"id_token": logout}
        error = failure(client.refresh, client_refresh_token(provider), signed_in.id_token)
        assert error.code == "invalid_id_token" and ("typ" in error.detail or "events" in error.detail)


def client_refresh_token(provider: FakeProvider) -> str:
    """Any live refresh token of alice's (the provider rotates them on every refresh)."""
    return provider.live_refresh_tokens("alice")[-1]


# -- unsigned ID tokens from the token endpoint (issue 13 item 18, rp-id_token-sig-none) ---------------


def unsigned_provider(advertise: bool = True) -> FakeProvider:
    """A provider registered with id_token_signed_response_alg=none: unsigned ID tokens from its token endpoint."""
    provider = FakeProvider()
    if advertise:
        provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "none"]

    def make_unsigned(sub: str = "alice", nonce: Optional[str] = None, **overrides: Any) -> str:
        return forge({"alg": "none"}, provider.id_token_claims(sub, nonce, **overrides))

    provider.make_id_token = make_unsigned  # type: ignore[method-assign]
    return provider


def test_an_unsigned_id_token_from_the_token_endpoint_is_accepted_when_configured() -> None:
    provider = unsigned_provider()
    result = sign_in(make_client(provider, id_token_algorithms=("RS256", "none")), provider)
    assert result.claims["sub"] == "alice" and result.id_token.endswith(".")
    assert provider.requests_to("/.well-known/jwks.json") == []  # nothing to verify with
    assert len(provider.requests_to("/userinfo")) == 1


def test_an_unsigned_id_token_is_refused_by_default() -> None:
    provider = unsigned_provider()
    error = failure(sign_in, make_client(provider), provider)
    assert (error.code, error.detail) == ("invalid_id_token", "algorithm 'none' is not accepted")


def test_an_unsigned_id_token_is_refused_when_the_provider_does_not_advertise_none() -> None:
    provider = unsigned_provider(advertise=False)
    error = failure(sign_in, make_client(provider, id_token_algorithms=("RS256", "none")), provider)
    assert (error.code, error.detail) == ("invalid_id_token", "algorithm 'none' is not accepted")


def test_an_unsigned_id_token_over_loopback_http_under_allow_insecure_http() -> None:
    provider = unsigned_provider()
    provider.issuer = "http://127.0.0.1:3000/"
    client = make_client(provider, issuer=provider.issuer, base_url="http://127.0.0.1:5000",
                         allow_insecure_http=True, id_token_algorithms=("none",))
    assert sign_in(client, provider).claims["sub"] == "alice"


def test_an_unsigned_refreshed_id_token_is_refused() -> None:
    provider = unsigned_provider()
    provider.refresh_id_token = True
    client, signed_in = refreshable(provider, id_token_algorithms=("RS256", "none"))
    error = failure(client.refresh, signed_in.refresh_token, signed_in.id_token)
    assert (error.code, error.detail) == ("invalid_id_token", "algorithm 'none' is not accepted")


# -- secrets stay out of repr (error reporters capture locals) -------------------------------------

#: Field names that hold a credential, a token or a one-time secret of a sign-in, in any dataclass.
SECRET_FIELDS = frozenset({"id_token", "access_token", "refresh_token", "client_secret", "session_secret",
                           "code_verifier", "nonce", "state", "password", "session_url", "secrets"})


def assert_hidden(value: object, *markers: str) -> None:
    for text in (repr(value), str(value)):
        for marker in markers:
            assert marker not in text, f"{marker} shown in {text}"


def test_sign_in_results_and_login_requests_hide_their_secrets() -> None:
    result = oidc.SignInResult(id_token="MARK-idtoken", claims={"sub": "alice"}, userinfo={"email": "a@x"},
                               access_token="MARK-access", expires_at=1.0, refresh_token="MARK-refresh")
    assert_hidden(result, "MARK-")
    assert "alice" in repr(result)  # still useful: who it is, when it expires
    refreshed = oidc.RefreshResult(access_token="MARK-access", expires_at=2.0, refresh_token="MARK-refresh",
                                   id_token="MARK-idtoken")
    assert_hidden(refreshed, "MARK-")
    login = LoginRequest(state="MARK-state", nonce="MARK-nonce", code_verifier="MARK-verifier",
                         code_challenge="public-challenge")
    assert_hidden(login, "MARK-")
    assert "public-challenge" in repr(login)


def test_session_objects_hide_their_tokens() -> None:
    from sso_middleware._session.state import SignedInUser, Tokens

    user = SignedInUser(claims={"sub": "alice"}, connection=None, id_token="MARK-idtoken", signed_in_at=1.0)
    assert_hidden(user, "MARK-")
    assert_hidden(Tokens(access_token="MARK-access", expires_at=1.0, refresh_token="MARK-refresh"), "MARK-")


def test_no_dataclass_of_the_package_shows_a_secret_field() -> None:
    import dataclasses
    import importlib
    import pkgutil

    import sso_middleware

    found = []
    for module_info in pkgutil.walk_packages(sso_middleware.__path__, "sso_middleware."):  # sub-packages too
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if dataclasses.is_dataclass(value) and isinstance(value, type) and value.__module__ == module.__name__:
                found.append(value)
                shown = [f.name for f in dataclasses.fields(value) if f.name in SECRET_FIELDS and f.repr]
                assert not shown, f"{value.__qualname__} shows {shown} in its repr"
    names = {cls.__name__ for cls in found}
    assert {"SignInResult", "RefreshResult", "LoginRequest", "Transaction", "SSOConfig", "SignedInUser",
            "Tokens", "ClientCredentials", "DevUser", "Source", "FakeProvider", "Grant"} <= names


def test_the_dev_provider_credentials_hide_their_secrets() -> None:
    from sso_middleware.testing import ClientCredentials, DevUser

    credentials = ClientCredentials.from_metadata({"client_id": "app1", "client_secret": "MARK-secret"})
    assert_hidden(credentials, "MARK-")
    assert "app1" in repr(credentials)
    assert_hidden(DevUser(username="alice", password="MARK-password", claims={"sub": "alice"}), "MARK-")
