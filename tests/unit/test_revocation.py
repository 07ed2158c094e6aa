"""RFC 7009 revocation alone (:mod:`sso_middleware._oidc.revocation`): the setting, the requests, the outcomes.

An ``OIDCClient`` over the FakeProvider's transport: what goes on the wire (form, hint,
client authentication, the timeout) and what each answer means.  No WSGI.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from sso_middleware._config.settings import SSOConfig
from sso_middleware._oidc.client import OIDCClient
from sso_middleware._oidc.discovery import ProviderMetadata
from sso_middleware._oidc.http import ProviderHTTP
from sso_middleware._oidc.revocation import REVOCATION_TIMEOUT, TokenRevoker, enabled
from sso_middleware.errors import ConfigError, ProviderBadResponse

from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider, make_response
from ..fakes import issued as issued_secret

BASE = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "base_url": "https://app2.example", "session_secret": "s" * 40, "keep_access_token": True}
ENDPOINT = ISSUER.rstrip("/") + "/oauth/revoke"


def revoker(provider: FakeProvider, **settings: Any) -> TokenRevoker:
    config = SSOConfig(**{**BASE, **settings})
    return TokenRevoker(OIDCClient(config, http=ProviderHTTP.for_config(config, transport=provider.transport())))


def sent(provider: FakeProvider) -> list[dict[str, str]]:
    forms = []
    for call in provider.requests_to("/oauth/revoke"):
        body = call.body.decode() if isinstance(call.body, bytes) else str(call.body)
        forms.append({key: values[0] for key, values in parse_qs(body).items()})
    return forms


@pytest.mark.parametrize(("settings", "ok"), [
    ({}, True), ({"revoke_tokens_on_logout": "on"}, True), ({"revoke_tokens_on_logout": "off"}, False),
    ({"keep_access_token": False}, False),
])
def test_enabled_follows_the_setting_the_tokens_kept_and_discovery(settings: dict[str, Any], ok: bool) -> None:
    config = SSOConfig(**{**BASE, **settings})
    assert enabled(config, ENDPOINT) is ok
    assert enabled(config, None) is False


def test_the_setting_is_checked_at_build() -> None:
    with pytest.raises(ConfigError, match="auto, on, off"):
        SSOConfig(**BASE, revoke_tokens_on_logout="true")
    with pytest.raises(ConfigError, match="keep_access_token"):
        SSOConfig(**{**BASE, "keep_access_token": False}, revoke_tokens_on_logout="on")
    assert SSOConfig(**{**BASE, "keep_access_token": False}).revoke_tokens_on_logout == "auto"


def test_discovery_keeps_the_revocation_endpoint_checked() -> None:
    config = SSOConfig(**BASE)
    provider = FakeProvider(revocation=True)
    assert ProviderMetadata.parse(provider.discovery(), config).revocation_endpoint == ENDPOINT
    assert ProviderMetadata.parse(FakeProvider().discovery(), config).revocation_endpoint is None
    with pytest.raises(ProviderBadResponse, match="revocation_endpoint"):
        ProviderMetadata.parse({**provider.discovery(), "revocation_endpoint": "http://evil.example/r"}, config)


def test_refresh_then_access_token_each_with_its_hint() -> None:
    provider = FakeProvider(revocation=True)
    outcome = revoker(provider).revoke(issued_secret("rt-unit-1"), issued_secret("at-unit-1"))
    assert outcome.revoked == ("refresh_token", "access_token") and outcome.failure is None
    assert [(form["token"], form["token_type_hint"]) for form in sent(provider)] == [
        ("rt-unit-1", "refresh_token"), ("at-unit-1", "access_token")]


def test_nothing_to_revoke_sends_nothing() -> None:
    provider = FakeProvider(revocation=True)
    assert revoker(provider).revoke(None, None).revoked == ()
    assert revoker(provider, revoke_tokens_on_logout="off").revoke("rt", "at").revoked == ()
    assert provider.calls == []  # not even discovery


def test_the_calls_have_the_short_timeout() -> None:
    provider = FakeProvider(revocation=True)
    timeouts: list[Any] = []
    real = provider.transport()

    class Timed(type(real)):  # type: ignore[misc]
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            timeouts.append(kwargs.get("timeout"))
            return super().send(request, **kwargs)

    config = SSOConfig(**BASE, http_timeout=30)
    client = OIDCClient(config, http=ProviderHTTP.for_config(config, transport=Timed(provider)))
    TokenRevoker(client).revoke("rt", None)
    assert timeouts[-1] == REVOCATION_TIMEOUT and timeouts[0] == 30  # discovery keeps http_timeout


@pytest.mark.parametrize(("answer", "failure"), [
    (lambda r: make_response(r, 200, b""), None),
    (lambda r: make_response(r, 200, b"<html>ok</html>"), None),
    (lambda r: make_response(r, 400, b'{"error": "invalid_request"}'), "HTTP 400 invalid_request"),
    (lambda r: make_response(r, 401, b'{"error": "invalid_client"}'), "HTTP 401 invalid_client"),
    (lambda r: make_response(r, 503, b"down"), "HTTP 503"),
    (lambda r: make_response(r, 400, b'{"error": "\\u001b[31mred"}'), "HTTP 400 31mred"),
])
def test_answers_and_what_they_mean(answer: Any, failure: Any) -> None:
    provider = FakeProvider(revocation=True)
    provider.fail["/oauth/revoke"] = answer
    outcome = revoker(provider).revoke("rt-x", "at-x")
    assert outcome.failure == failure
    assert len(sent(provider)) == (2 if failure is None else 1)


def test_discovery_failing_at_sign_out_is_a_failure_not_an_exception() -> None:
    provider = FakeProvider(revocation=True)
    provider.fail["/.well-known/openid-configuration"] = requests.ConnectionError("down")
    assert revoker(provider).revoke("rt", "at").failure == "provider_unreachable"


def test_sign_out_waits_a_bounded_time_whatever_the_provider_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider (or a middlebox) that trickles its answer holds a call past its timeout: the socket timeout
    bounds each read, not their sum (a header line a second kept a 3 s call open 12 s, measured over a real
    socket).  Sign-out waits at most ``REVOCATION_BUDGET`` for both revocations, whatever happens."""
    from sso_middleware._oidc import revocation

    monkeypatch.setattr(revocation, "REVOCATION_BUDGET", 0.5, raising=False)
    provider = FakeProvider(revocation=True)

    def slow(request: requests.PreparedRequest) -> requests.Response:
        time.sleep(2.5)
        return make_response(request, 200, b"")

    provider.fail["/oauth/revoke"] = slow
    started = time.monotonic()
    outcome = revoker(provider).revoke("rt-slow", "at-slow")
    assert time.monotonic() - started < 1.5
    assert outcome.failure == "provider_timeout" and outcome.revoked == ()
