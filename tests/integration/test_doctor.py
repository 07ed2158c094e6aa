"""The configuration doctor (:mod:`sso_middleware._doctor`, ``python -m sso_middleware check``).

Against real things only: the bundled OpenID Provider (``oidc_provider``), real
redis-server and memcached processes, closed loopback ports, and -- for provider
behaviour the bundled one cannot show (a skewed clock, odd metadata, Auth0-style
refusals) -- a tiny real HTTP server on a loopback port.  ``main([...])`` runs
in-process; a few runs go through a real subprocess (``python -m`` and the
``sso-middleware`` console script).  Every run asserts that no secret and no
traceback reached the output.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest

from sso_middleware.__main__ import main
from sso_middleware._redaction import Redactor, redact_url, url_passwords
from sso_middleware.testing import DEFAULT_API, DevProvider

from ..fakes import public_jwk, rsa_key
from ..postgres_server import APP_PASSWORD, PostgresServer
from ..servers import free_port
from ..store_servers import StoreServer
from ..tokens import ec_jwk, ec_key

REPO = Path(__file__).resolve().parents[2]
SESSION_SECRET = "doctor-session-secret-0123456789abcdef"
REDIS_PASSWORD = "redis-pass-9f8e7d"
WRONG_SECRET = "wrong-secret-value-123"
BASE_URL = "http://127.0.0.1:5001"  # app1's registered origin
#: Never to appear in any output (client secrets are added per test).
SECRETS = {SESSION_SECRET, REDIS_PASSWORD, WRONG_SECRET, "app1-secret", "app2-secret"}


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def lines(self, status: str, check: Optional[str] = None) -> list[str]:
        marker = {"OK": "[ OK ]", "WARN": "[WARN]", "FAIL": "[FAIL]", "INFO": "[INFO]", "SKIP": "[SKIP]"}[status]
        prefix = f"{marker} {check}:" if check else marker
        return [line for line in self.out.splitlines() if line.startswith(prefix)]

    def line(self, status: str, check: str) -> str:
        found = self.lines(status, check)
        assert found, f"no {status} line for {check!r} in:\n{self.out}"
        return "\n".join(found)


def assert_clean(text: str, extra_secrets: tuple[str, ...] = ()) -> None:
    for secret in (*SECRETS, *extra_secrets):
        assert secret not in text, f"a secret ({secret[:4]}...) was printed:\n{text}"
    assert "Traceback" not in text, text


def check(capsys: pytest.CaptureFixture[str], *args: str, secrets: tuple[str, ...] = ()) -> Outcome:
    """``sso-middleware check ARGS`` in-process."""
    code = main(["check", *args])
    captured = capsys.readouterr()
    assert_clean(captured.out + captured.err, secrets)
    return Outcome(code, captured.out, captured.err)


def settings_for(provider: DevProvider, tmp_path: Path, client: str = "app1", **overrides: str) -> dict[str, str]:
    credentials = provider.client(client)
    settings = {
        "issuer": provider.issuer,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "token_endpoint_auth_method": credentials.token_endpoint_auth_method,
        "base_url": BASE_URL,
        "session_secret": SESSION_SECRET,
        "allow_insecure_http": "true",
        "session_data_dir": str(tmp_path / "sessions"),
    }
    settings.update(overrides)
    return {name: value for name, value in settings.items() if value is not None}


def write_settings(tmp_path: Path, settings: dict[str, Any], name: str = "sso.conf") -> str:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(settings))
    else:
        path.write_text("# sso settings\n\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    return str(path)


def run_settings(capsys: pytest.CaptureFixture[str], provider: DevProvider, tmp_path: Path, *args: str,
                 **overrides: str) -> Outcome:
    return check(capsys, "--settings", write_settings(tmp_path, settings_for(provider, tmp_path, **overrides)),
                 *args)


def assert_only_failure(outcome: Outcome, check_name: str, *fragments: str) -> str:
    assert outcome.code == 1, outcome.out
    fails = outcome.lines("FAIL")
    assert len(fails) == 1, outcome.out
    assert fails[0].startswith(f"[FAIL] {check_name}:"), outcome.out
    for fragment in fragments:
        assert fragment in fails[0], outcome.out
    return fails[0]


# -- a good configuration ---------------------------------------------------------------

EXPECTED_OK = ("configuration", "discovery", "clock", "signing keys", "provider capabilities", "endpoints",
               "client credentials", "session store")


def test_a_good_configuration_passes_every_check(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                 tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path)

    assert outcome.code == 0, outcome.out
    assert not outcome.lines("FAIL") and not outcome.lines("SKIP")
    for name in EXPECTED_OK:
        outcome.line("OK", name)
    assert outcome.lines("WARN") == ["[WARN] cookies: base_url is http: cookies are not Secure "
                                     "(acceptable only for loopback demos)"]
    assert oidc_provider.issuer in outcome.line("OK", "configuration")
    assert "app1" in outcome.line("OK", "configuration")
    assert "client id and secret accepted" in outcome.line("OK", "client credentials")
    assert "RS256" in outcome.line("OK", "signing keys")
    assert "within a second" in outcome.line("OK", "clock")
    assert len(outcome.lines("OK", "endpoints")) == 3  # token, userinfo, end_session
    assert "***" not in outcome.out  # the redaction net masks nothing that is not a secret
    registration = outcome.line("INFO", "register at the provider")
    for url in (f"Allowed Callback URL (redirect_uri): {BASE_URL}/auth/callback",
                f"Allowed Logout URL (post_logout_redirect_uri): {BASE_URL}/",
                f"Back-Channel Logout URI: {BASE_URL}/auth/backchannel-logout",
                f"Initiate Login URI (SSO entry point): {BASE_URL}/auth/sso"):
        assert url in registration
    assert "max_request_body 65536 bytes" in registration
    assert "session cookie sso_session: HttpOnly; SameSite=Lax" in outcome.line("INFO", "cookies")
    assert outcome.out.rstrip().endswith("0 failure(s)")
    assert not (tmp_path / "sessions").exists(), "the file store probe left its folder behind"


def test_a_client_secret_post_client_and_a_freshly_registered_client_pass(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path
) -> None:
    # app2's own origin: its pushed authorization request (PAR) is checked against its registered redirect_uri
    outcome = run_settings(capsys, oidc_provider, tmp_path, client="app2", base_url="http://127.0.0.1:5002")
    assert outcome.code == 0, outcome.out
    assert "client_secret_post" in outcome.line("OK", "client credentials")

    base_url = f"http://127.0.0.1:{free_port()}"
    fresh = oidc_provider.register_client([base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"])
    settings = settings_for(oidc_provider, tmp_path, client_id=fresh.client_id, client_secret=fresh.client_secret,
                            base_url=base_url)
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings), secrets=(fresh.client_secret,))
    assert outcome.code == 0, outcome.out
    assert fresh.client_id in outcome.line("OK", "configuration")


def test_tokens_and_rules_are_checked_against_the_provider(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path
) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, keep_access_token="true",
                           scope="openid profile email offline_access",
                           access_rules="/vault acr_values urn:dev:loa:mfa; /admin claim roles includes admin")
    assert outcome.code == 0, outcome.out
    assert "one refresh at a time through a lock in the file store" in outcome.line("OK", "tokens and rules")
    assert "urn:dev:loa:mfa are in acr_values_supported" in outcome.out
    assert "access_rules guard /admin, /vault" in outcome.line("INFO", "tokens and rules")


def test_bearer_settings_are_checked_against_the_provider(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path
) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, bearer_paths="/api", bearer_audience=DEFAULT_API,
                           bearer_rules="/api/admin scope read:admin", bearer_introspection="true")
    assert outcome.code == 0, outcome.out
    found = outcome.line("OK", "bearer tokens")
    assert f"bearer_paths /api accept access tokens for {DEFAULT_API} (typ at+jwt" in found
    assert "has keys for access tokens signed with RS256" in found
    assert f"introspected at {oidc_provider.endpoint('introspection')}" in found
    assert "bearer_rules guard /api/admin" in outcome.line("INFO", "bearer tokens")


def test_no_bearer_paths_no_bearer_lines(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                         tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path)
    assert "bearer tokens" not in outcome.out


@pytest.mark.parametrize(
    ("overrides", "check_name", "fragment"),
    [
        pytest.param({"bearer_algorithms": "ES256"}, "bearer tokens", "no key usable for bearer_algorithms ES256",
                     id="no-keys"),
        pytest.param({"bearer_audience": "{issuer}/userinfo"}, "configuration", "userinfo audience",
                     id="userinfo-audience"),  # a ConfigError: the middleware would not start either
    ],
)
def test_bearer_settings_no_token_could_pass_fail(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                  tmp_path: Path, overrides: dict[str, str], check_name: str,
                                                  fragment: str) -> None:
    values = {"bearer_paths": "/api", "bearer_audience": DEFAULT_API, **overrides}
    values = {name: value.format(issuer=oidc_provider.issuer.rstrip("/")) for name, value in values.items()}
    assert_only_failure(run_settings(capsys, oidc_provider, tmp_path, **values), check_name, fragment)


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        ({"keep_access_token": "true"}, "no refresh token"),
        ({"keep_access_token": "true", "scope": "openid offline_access", "session_type": "cookie"},
         "single-flight per process only"),
        ({"access_rules": "/vault acr_values urn:unknown:loa"}, "step-up to them will end in step_up_failed"),
    ],
)
def test_token_and_rule_settings_the_deployment_cannot_honour_are_warned_about(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path, overrides: dict[str, str],
    warning: str,
) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, **overrides)
    assert outcome.code == 0, outcome.out  # warnings, not failures
    assert warning in outcome.line("WARN", "tokens and rules")


def test_authorization_parameters_and_organization_are_reported(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path
) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, authorize_params="ext-tenant=blue",
                           forward_params="login_hint scope", organization="acme",
                           authorize_params_hook="tests.wsgi.test_authorize_params:hook_by_host")
    assert outcome.code == 0, outcome.out
    info = outcome.line("INFO", "authorization parameters")
    assert "ext-tenant" in info and "login_hint" in info and "tests.wsgi.test_authorize_params:hook_by_host" in info
    assert "must carry org_name" in outcome.line("OK", "authorization parameters")
    warnings = outcome.line("WARN", "authorization parameters")
    assert "any link can add scopes" in warnings and "Use organization names" in warnings
    assert "Auth0 feature" in warnings  # the dev provider is no Auth0 tenant


@pytest.mark.parametrize(("setting", "value"), [("forward_params", "login_hint state"),
                                                 ("authorize_params", "redirect_uri=https://evil.example/"),
                                                 ("authorize_params_hook", "no_such_module:hook"),
                                                 ("organization", "two words")])
def test_refused_authorization_parameters_fail_the_configuration_naming_the_setting(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path, setting: str, value: str
) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, **{setting: value})
    assert outcome.code != 0
    assert f"'{setting}'" in outcome.out + outcome.err, outcome.out


def test_json_output(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, "--json")
    assert outcome.code == 0
    report = json.loads(outcome.out)
    assert report["exit_status"] == 0
    assert report["source"].startswith("settings file ")
    checks = {(item["status"], item["check"]) for item in report["results"]}
    assert {("OK", name) for name in EXPECTED_OK} <= checks
    assert all(set(item) == {"status", "check", "message"} for item in report["results"])

    outcome = run_settings(capsys, oidc_provider, tmp_path, "--json", client_secret=WRONG_SECRET)
    report = json.loads(outcome.out)
    assert outcome.code == 1 and report["exit_status"] == 1
    assert [item["check"] for item in report["results"] if item["status"] == "FAIL"] == ["client credentials"]


# -- broken configurations against the real provider -------------------------------------------------


def test_an_issuer_differing_by_a_trailing_slash_fails_discovery_and_skips_provider_checks(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path
) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, issuer=oidc_provider.issuer + "/")
    line = assert_only_failure(outcome, "discovery", "issuer mismatch", repr(oidc_provider.issuer),
                               repr(oidc_provider.issuer + "/"), "trailing '/'", "Auth0")
    assert "set issuer = " + oidc_provider.issuer in line
    skipped = outcome.lines("SKIP")
    assert skipped == ["[SKIP] provider checks: clock, signing keys, provider capabilities, endpoints, "
                       "client credentials, client authentication, pushed authorization, front-channel logout, "
                       "token revocation (discovery failed)"]
    # the checks that need no provider still run
    outcome.line("INFO", "register at the provider")
    outcome.line("OK", "session store")


@pytest.mark.parametrize("overrides", [
    pytest.param({"client_secret": WRONG_SECRET}, id="wrong-secret"),
    pytest.param({"client_secret": WRONG_SECRET, "token_endpoint_auth_method": "client_secret_post"},
                 id="wrong-secret-post"),
    pytest.param({"client_id": "no-such-client"}, id="unknown-client-id"),
])
def test_rejected_client_credentials_fail(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                          tmp_path: Path, overrides: dict[str, str]) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, **overrides)
    assert_only_failure(outcome, "client credentials", "client id or secret rejected", "invalid_client")


def test_an_unreachable_provider_fails_without_a_traceback(capsys: pytest.CaptureFixture[str],
                                                           oidc_provider: DevProvider, tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    outcome = run_settings(capsys, oidc_provider, tmp_path, issuer=issuer, http_timeout="2")
    assert time.monotonic() - started < 10
    assert_only_failure(outcome, "discovery", "cannot fetch", issuer, "Connection refused")
    assert len(outcome.lines("SKIP")) == 1
    assert "Traceback" not in outcome.err


def test_a_provider_that_never_answers_fails_within_http_timeout(capsys: pytest.CaptureFixture[str],
                                                                 oidc_provider: DevProvider, tmp_path: Path) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        outcome = run_settings(capsys, oidc_provider, tmp_path, issuer=issuer, http_timeout="1")
        assert time.monotonic() - started < 5
    assert_only_failure(outcome, "discovery", "cannot fetch", "no answer within 1.0s")


def test_signing_algorithms_the_provider_does_not_use_fail(capsys: pytest.CaptureFixture[str],
                                                          oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, id_token_algorithms="ES256 PS256")
    assert_only_failure(outcome, "signing keys", "signs ID tokens with RS256", "ES256, PS256")


def test_a_cookie_domain_not_matching_base_url_fails(capsys: pytest.CaptureFixture[str],
                                                    oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, cookie_domain="example.com")
    assert_only_failure(outcome, "cookies", "example.com", "127.0.0.1", "browsers would drop")


def test_a_matching_cookie_domain_over_https_is_fine(capsys: pytest.CaptureFixture[str],
                                                    oidc_provider: DevProvider, tmp_path: Path) -> None:
    # pushed_authorization off: this base_url is not registered, which a test push (PAR) would warn about
    outcome = run_settings(capsys, oidc_provider, tmp_path, base_url="https://app.example.com",
                           cookie_domain=".example.com", pushed_authorization="off")
    assert outcome.code == 0, outcome.out
    assert not outcome.lines("WARN"), outcome.out
    assert "covers base_url's host app.example.com" in outcome.line("OK", "cookies")
    assert "session cookie sso_session: HttpOnly; SameSite=Lax; Path=/; Secure; Domain=.example.com" in (
        outcome.line("INFO", "cookies"))


def test_the_default_cookie_name_over_https_is_host_prefixed(capsys: pytest.CaptureFixture[str],
                                                            oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, base_url="https://app.example.com")
    assert "session cookie __Host-sso_session: HttpOnly; SameSite=Lax; Path=/; Secure; host-only" in (
        outcome.line("INFO", "cookies"))


@pytest.mark.parametrize(("overrides", "setting", "fragment"), [
    pytest.param({"clock_skew": "soon"}, "clock_skew", "is not an integer", id="not-an-integer"),
    pytest.param({"session_secret": "short"}, "session_secret", "at least 32", id="short-session-secret"),
    pytest.param({"allow_insecure_http": "false"}, "issuer", "http://", id="http-issuer"),
    pytest.param({"colour": "blue"}, "colour", "unknown setting", id="unknown-setting"),
    pytest.param({"session_type": "ext:redis", "session_url": "localhost:6379"}, "session_url", "redis://",
                 id="redis-url"),
])
def test_a_bad_setting_fails_naming_the_setting(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                tmp_path: Path, overrides: dict[str, str], setting: str,
                                                fragment: str) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, **overrides)
    assert outcome.code == 1
    assert outcome.out.splitlines()[0].startswith(f"[FAIL] configuration: sso_middleware setting {setting!r}:")
    assert fragment in outcome.out.splitlines()[0]
    assert len(outcome.lines("FAIL")) == 1 and not outcome.lines("OK")


# -- session stores ---------------------------------------------------------------------------------


@pytest.fixture
def password_redis() -> Iterator[StoreServer]:
    """redis-server that requires a password."""
    server = StoreServer("redis", redis_args=("--requirepass", REDIS_PASSWORD)).start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_store_answering_ping(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                   tmp_path: Path, password_redis: StoreServer) -> None:
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{password_redis.port}/0"
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_type="ext:redis", session_url=url)
    assert outcome.code == 0, outcome.out
    line = outcome.line("OK", "session store")
    assert f"redis://:***@127.0.0.1:{password_redis.port}/0 answers PING" in line

    wrong = f"redis://:{WRONG_SECRET}@127.0.0.1:{password_redis.port}/0"
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_type="ext:redis", session_url=wrong)
    assert_only_failure(outcome, "session store", "does not answer PING", "redis://:***@")


def test_redis_store_on_a_closed_port_fails(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                           tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_type="ext:redis", session_url=url,
                           session_store_timeout="1")
    assert_only_failure(outcome, "session store", f"redis at redis://:***@127.0.0.1:{port}/0 does not answer PING",
                        "ConnectionError")


def test_memcached_store(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path) -> None:
    server = StoreServer("memcached").start()
    try:
        outcome = run_settings(capsys, oidc_provider, tmp_path, session_type="ext:memcached", session_url=server.url)
        assert outcome.code == 0, outcome.out
        assert f"memcached at {server.url} stores and returns a probe key" in outcome.line("OK", "session store")
        assert server.memcached_stats()["curr_items"] == "0", "the probe key was left behind"
    finally:
        server.stop()
    closed = f"127.0.0.1:{free_port()}"
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_type="ext:memcached", session_url=closed)
    assert_only_failure(outcome, "session store", f"memcached at {closed} does not answer")


def test_a_data_dir_that_cannot_be_created_fails(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_data_dir=str(blocker / "sessions"))
    assert_only_failure(outcome, "session store", "cannot create", "session_data_dir")


def test_an_existing_data_dir_is_kept_and_left_clean(capsys: pytest.CaptureFixture[str],
                                                    oidc_provider: DevProvider, tmp_path: Path) -> None:
    data_dir = tmp_path / "sessions"
    data_dir.mkdir()
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_data_dir=str(data_dir))
    assert outcome.code == 0
    assert f"folder {data_dir} is writable" in outcome.line("OK", "session store")
    assert data_dir.is_dir() and list(data_dir.iterdir()) == []


@pytest.mark.parametrize(("session_type", "fragment"), [
    pytest.param("cookie", "encrypted cookie", id="cookie"),
    pytest.param("environ", "outer Beaker SessionMiddleware", id="environ"),
])
def test_stores_without_a_server_are_info(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                          tmp_path: Path, session_type: str, fragment: str) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, session_type=session_type)
    assert outcome.code == 0
    assert fragment in outcome.line("INFO", "session store")


# -- provider behaviour the bundled provider cannot show: a small real HTTP server --------------------


@dataclass
class MiniProvider:
    """Discovery, JWKS and token endpoints served over real HTTP, with scriptable answers."""

    port: int = field(default_factory=free_port)
    date_offset: float = 0.0
    discovery_changes: dict[str, Any] = field(default_factory=dict)
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": [public_jwk(rsa_key(), "mini")]})
    token_answer: tuple[int, dict[str, Any]] = (400, {"error": "invalid_grant"})
    token_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def discovery(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "userinfo_endpoint": self.issuer + "/userinfo",
            "end_session_endpoint": self.issuer + "/logout",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
            "backchannel_logout_supported": True,
        }
        document.update(self.discovery_changes)
        return {name: value for name, value in document.items() if value is not None}


@pytest.fixture
def mini() -> Iterator[MiniProvider]:
    provider = MiniProvider()

    class Handler(BaseHTTPRequestHandler):
        def date_time_string(self, timestamp: Optional[float] = None) -> str:
            return formatdate(time.time() + provider.date_offset, usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, document: Any) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._answer(200, provider.discovery())
            elif self.path == "/jwks":
                self._answer(200, provider.jwks)
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            provider.token_requests.append({"body": self.rfile.read(length).decode(),
                                            "authorization": self.headers.get("Authorization", "")})
            self._answer(*provider.token_answer)

    server = ThreadingHTTPServer(("127.0.0.1", provider.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def mini_settings(mini: MiniProvider, tmp_path: Path, **overrides: str) -> str:
    settings = {"issuer": mini.issuer, "client_id": "mini-client", "client_secret": "mini-client-secret",
                "base_url": BASE_URL, "session_secret": SESSION_SECRET, "allow_insecure_http": "true",
                "session_data_dir": str(tmp_path / "sessions"), **overrides}
    return write_settings(tmp_path, settings, "mini.json")


def test_the_mini_provider_passes(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path) -> None:
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path), secrets=("mini-client-secret",))
    assert outcome.code == 0, outcome.out
    assert "***" not in outcome.out  # not even the client id, a piece of this client secret
    assert "client_id mini-client," in outcome.line("OK", "configuration")
    request = mini.token_requests[-1]
    assert request["authorization"].startswith("Basic ")
    assert "grant_type=authorization_code" in request["body"] and "code_verifier=" in request["body"]
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A5001%2Fauth%2Fcallback" in request["body"]


@pytest.mark.parametrize(("offset", "status", "fragment"), [
    pytest.param(-3600, "FAIL", "about 3600 s behind", id="an-hour-behind"),
    pytest.param(600, "FAIL", "about 600 s ahead of", id="ten-minutes-ahead"),
    pytest.param(45, "WARN", "more than half", id="three-quarters-of-the-leeway"),
])
def test_a_skewed_provider_clock(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path,
                                 offset: int, status: str, fragment: str) -> None:
    mini.date_offset = offset
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert outcome.code == (1 if status == "FAIL" else 0), outcome.out
    line = outcome.line(status, "clock")
    assert fragment in line and "clock_skew = 60 s" in line
    if status == "FAIL":
        assert_only_failure(outcome, "clock", "NTP")


@pytest.mark.parametrize(("answer", "fragment"), [
    pytest.param((400, {"error": "unauthorized_client", "error_description": "grant not allowed"}),
                 "may not use the authorization code grant (unauthorized_client: unauthorized_client -- "
                 "grant not allowed)", id="unauthorized_client"),
    pytest.param((401, {"error": "access_denied", "error_description": "Unauthorized"}),
                 "client id or secret rejected by the token endpoint (client_secret_basic; HTTP 401: access_denied",
                 id="auth0-style-401"),
    pytest.param((503, {"error": "temporarily_unavailable"}), "", id="overloaded"),
])
def test_token_endpoint_refusals(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path,
                                 answer: tuple[int, dict[str, Any]], fragment: str) -> None:
    mini.token_answer = answer
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    if answer[0] == 503:  # an OAuth error other than invalid_client: the credentials got past authentication
        assert outcome.code == 0 and "temporarily_unavailable" in outcome.line("OK", "client credentials")
    else:
        assert_only_failure(outcome, "client credentials", fragment)


def test_an_auth_method_the_provider_does_not_support_fails(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                                           tmp_path: Path) -> None:
    mini.discovery_changes["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert_only_failure(outcome, "provider capabilities", "client_secret_basic is not among",
                        "(client_secret_post)")
    # absent, the member means client_secret_basic only (OpenID Connect Discovery 1.0, section 3)
    mini.discovery_changes["token_endpoint_auth_methods_supported"] = None
    outcome = check(capsys, "--settings",
                    mini_settings(mini, tmp_path, token_endpoint_auth_method="client_secret_post"))
    assert_only_failure(outcome, "provider capabilities", "client_secret_post is not among",
                        "(absent, which means client_secret_basic only)")


def test_capability_warnings(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path) -> None:
    mini.discovery_changes.update(code_challenge_methods_supported=None, end_session_endpoint=None,
                                  backchannel_logout_supported=None, grant_types_supported=["authorization_code"])
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, scope="openid profile offline_access"))
    assert outcome.code == 0, outcome.out
    warnings = outcome.line("WARN", "provider capabilities")
    assert "does not list S256" in warnings
    assert "scopes offline_access are not in the provider's scopes_supported" in warnings
    assert "no end_session_endpoint: sign-out will end only the local session" in warnings
    assert "does not advertise backchannel_logout_supported" in warnings
    assert "lacks refresh_token" in warnings
    assert "RFC 9207 not advertised" in outcome.line("INFO", "provider capabilities")


def test_no_response_type_code_fails(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path) -> None:
    mini.discovery_changes["response_types_supported"] = ["id_token"]
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert_only_failure(outcome, "provider capabilities", "lacks 'code'")


@pytest.mark.parametrize("jwks", [
    pytest.param({"keys": [public_jwk(rsa_key(), "enc", use="enc")]}, id="encryption-key-only"),
    pytest.param({"keys": [public_jwk(rsa_key(), "ps", alg="PS256")]}, id="key-for-another-alg"),
    pytest.param({"keys": []}, id="empty"),
    pytest.param({"nokeys": True}, id="no-keys-member"),
])
def test_a_jwks_without_a_usable_key_fails(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path,
                                           jwks: dict[str, Any]) -> None:
    mini.jwks = jwks
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert_only_failure(outcome, "signing keys", mini.issuer + "/jwks")


def test_no_algorithm_in_common_with_the_provider_fails_naming_id_token_algorithms(
    capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path
) -> None:
    """Issue 13 item 15: the doctor applies the middleware's own intersection rule."""
    mini.discovery_changes["id_token_signing_alg_values_supported"] = ["ES384", "none"]
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, id_token_algorithms="RS256 ES256"),
                    secrets=("mini-client-secret",))
    assert_only_failure(outcome, "signing keys", "id_token_algorithms", "ES384, none", "RS256, ES256",
                        "signing_algorithm_mismatch")


def test_an_allowed_algorithm_the_provider_does_not_advertise_is_not_counted(
    capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path
) -> None:
    """ES256 is allowed and has a key, but the provider advertises RS256 only: the RSA key is what counts."""
    mini.jwks = {"keys": [ec_jwk(ec_key(), "ec-1")]}
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, id_token_algorithms="RS256 ES256"),
                    secrets=("mini-client-secret",))
    assert_only_failure(outcome, "signing keys", "no signing key usable for RS256")


@pytest.mark.parametrize("advertised", [["RS256", "none"], ["none"]], ids=["beside-rs256", "alone"])
def test_none_in_id_token_algorithms_warns_loudly(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                                  tmp_path: Path, advertised: list[str]) -> None:
    """Issue 13 item 18: unsigned ID tokens accepted is said in capitals, whether or not keys are needed."""
    mini.discovery_changes["id_token_signing_alg_values_supported"] = advertised
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, id_token_algorithms="RS256 none"),
                    secrets=("mini-client-secret",))
    assert outcome.code == 0, outcome.out
    warning = outcome.line("WARN", "signing keys")
    assert "UNSIGNED ID TOKENS ARE ACCEPTED" in warning and "id_token_signed_response_alg=none" in warning
    if advertised == ["none"]:
        assert "no signing key is needed" in outcome.line("OK", "signing keys")
        assert "logout tokens" in warning and "can never verify" in warning
    else:
        assert "usable for RS256" in outcome.line("OK", "signing keys")


def test_none_the_provider_does_not_advertise_is_a_warning_to_remove_it(
    capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path
) -> None:
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, id_token_algorithms="RS256 none"),
                    secrets=("mini-client-secret",))
    assert outcome.code == 0, outcome.out
    assert "does not advertise it" in outcome.line("WARN", "signing keys")
    assert "UNSIGNED" not in outcome.out


def test_none_with_a_discovery_silent_about_algorithms_is_not_accepted(
    capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path
) -> None:
    """The doctor says what the middleware does: without id_token_signing_alg_values_supported, 'none' is
    dropped (unsigned tokens need the provider to advertise it); 'none' alone is then a failure."""
    mini.discovery_changes["id_token_signing_alg_values_supported"] = None
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, id_token_algorithms="RS256 none"),
                    secrets=("mini-client-secret",))
    assert outcome.code == 0, outcome.out
    assert "UNSIGNED" not in outcome.out
    assert "usable for RS256" in outcome.line("OK", "signing keys")
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, id_token_algorithms="none"),
                    secrets=("mini-client-secret",))
    assert_only_failure(outcome, "signing keys", "signing_algorithm_mismatch")
    assert "UNSIGNED" not in outcome.out


def test_an_http_endpoint_under_an_https_issuer_style_check_is_reused(
    capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path
) -> None:
    """ProviderMetadata.parse decides: an endpoint on a non-loopback http host is refused."""
    mini.discovery_changes["token_endpoint"] = "http://op.example/token"
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert_only_failure(outcome, "discovery", "token_endpoint", "loopback")
    assert len(outcome.lines("SKIP")) == 1


# -- configuration sources -------------------------------------------------------------------------


def test_a_keyword_settings_file_and_a_json_one(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                               tmp_path: Path) -> None:
    settings = settings_for(oidc_provider, tmp_path)
    text = "\n".join(["# deployment settings", ""] + [f"  {name}   =   {value}  " for name, value in settings.items()])
    path = tmp_path / "keywords.conf"
    path.write_text(text + "\n")
    outcome = check(capsys, "--settings", str(path))
    assert outcome.code == 0, outcome.out
    assert f"settings file {path}" in outcome.line("OK", "configuration")

    json_settings: dict[str, Any] = dict(settings, allow_insecure_http=True, clock_skew=30,
                                         id_token_algorithms=["RS256"])
    outcome = check(capsys, "--settings", write_settings(tmp_path, json_settings, "sso.json"))
    assert outcome.code == 0, outcome.out


@pytest.mark.parametrize(("name", "text", "fragment"), [
    pytest.param("bad.conf", "issuer https://op.example/\n", "line 1: expected 'name = value'", id="no-equals"),
    pytest.param("twice.conf", "client_id = a\nclient_id = b\n", "line 2: client_id is set twice", id="twice"),
    pytest.param("bad.json", "{not json", "is not valid JSON", id="bad-json"),
    pytest.param("list.json", "[1, 2]", "must hold a JSON object", id="json-list"),
])
def test_an_unreadable_settings_file_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str,
                                          text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    outcome = check(capsys, "--settings", str(path))
    assert outcome.code == 1
    assert outcome.out.startswith("[FAIL] configuration: ") and fragment in outcome.out


def test_the_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                         oidc_provider: DevProvider, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SSO_"):
            monkeypatch.delenv(name)
    for name, value in settings_for(oidc_provider, tmp_path).items():
        monkeypatch.setenv(f"SSO_{name.upper()}", value)
    outcome = check(capsys)
    assert outcome.code == 0, outcome.out
    assert "from environment SSO_*" in outcome.line("OK", "configuration")
    assert check(capsys, "--env").code == 0

    outcome = check(capsys, "--env", "--set", f"client_secret={WRONG_SECRET}")
    assert_only_failure(outcome, "client credentials", "rejected")

    monkeypatch.setenv("SSO_CLOCK_SKEW", "-5")
    outcome = check(capsys)
    assert outcome.code == 1
    assert outcome.out.startswith("[FAIL] configuration: sso_middleware setting 'clock_skew': must be a positive")


INI = """\
[DEFAULT]
issuer = {issuer}
client_id = app1
client_secret = app1-secret
session_secret = {session_secret}
base_url = {base_url}

[pipeline:main]
pipeline = other sso legacy

[filter:other]
use = egg:Paste#gzip

[filter:sso]
use = egg:sso_middleware#main
get issuer = issuer
get client_id = client_id
get client_secret = client_secret
get session_secret = session_secret
get base_url = base_url
set unrelated = a global variable, not a setting
allow_insecure_http = true
session_data_dir = %(here)s/sessions
cookie_name = legacy_session

[app:legacy]
use = call:tests.wsgi.test_paste:app_factory
"""


def write_ini(tmp_path: Path, provider: DevProvider, text: str = INI) -> Path:
    path = tmp_path / "deploy.ini"
    path.write_text(text.format(issuer=provider.issuer, session_secret=SESSION_SECRET, base_url=BASE_URL))
    return path


def test_an_ini_file_is_read_like_pastedeploy_does(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                  tmp_path: Path) -> None:
    path = write_ini(tmp_path, oidc_provider)
    outcome = check(capsys, "--ini", str(path))
    assert outcome.code == 0, outcome.out
    assert f"ini {path} [filter:sso]" in outcome.line("OK", "configuration")
    assert f"folder {tmp_path / 'sessions'} is writable" in outcome.line("OK", "session store")  # %(here)s
    assert "session cookie legacy_session" in outcome.line("INFO", "cookies")
    assert check(capsys, "--ini", str(path), "--section", "filter:sso").code == 0
    assert check(capsys, "--ini", str(path), "--section", "sso").code == 0

    # --set is a global variable: `get client_secret = client_secret` sees it (as with pserve NAME=VALUE)
    outcome = check(capsys, "--ini", str(path), "--set", f"client_secret={WRONG_SECRET}")
    assert_only_failure(outcome, "client credentials", "rejected")


def test_the_example_paste_ini(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                               tmp_path: Path) -> None:
    ini = str(REPO / "examples" / "paste" / "app.ini")
    globals_ = [f"issuer={oidc_provider.issuer}", "client_id=app1", "client_secret=app1-secret",
                f"session_secret={SESSION_SECRET}", f"base_url={BASE_URL}", "allow_insecure_http=true",
                f"session_data_dir={tmp_path / 'sessions'}"]
    outcome = check(capsys, "--ini", ini, *(arg for value in globals_ for arg in ("--set", value)))
    assert outcome.code == 0, outcome.out
    assert "session cookie legacy_session" in outcome.line("INFO", "cookies")

    # without the secrets (empty in its [DEFAULT]) the configuration is refused, naming the setting
    outcome = check(capsys, "--ini", ini, "--set", f"issuer={oidc_provider.issuer}", "--set", "client_id=app1",
                    "--set", "allow_insecure_http=true")
    assert outcome.code == 1
    assert outcome.out.startswith("[FAIL] configuration: sso_middleware setting 'client_secret': required")


def test_an_ini_reading_an_unset_global_fails(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                             tmp_path: Path) -> None:
    path = write_ini(tmp_path, oidc_provider, INI.replace("client_secret = app1-secret\n", ""))
    outcome = check(capsys, "--ini", str(path))
    assert outcome.code == 1
    assert outcome.out.startswith("[FAIL] configuration: [filter:sso] reads the global variable 'client_secret'")


@pytest.mark.parametrize("args", [
    pytest.param(["--ini", "/nonexistent/deploy.ini"], id="missing-ini"),
    pytest.param(["--settings", "/nonexistent/sso.conf"], id="missing-settings"),
    pytest.param(["--ini", "INI", "--section", "filter:nope"], id="missing-section"),
    pytest.param(["--ini", "INI", "--section", "app:legacy"], id="not-a-filter-section"),
    pytest.param(["--ini", "PLAIN"], id="no-sso-section"),
    pytest.param(["--ini", "INI", "--settings", "INI"], id="two-sources"),
    pytest.param(["--section", "filter:sso"], id="section-without-ini"),
    pytest.param(["--set", "no-equals-sign"], id="bad-set"),
    pytest.param(["--frobnicate"], id="unknown-option"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path,
                             args: list[str]) -> None:
    ini = write_ini(tmp_path, oidc_provider)
    plain = tmp_path / "plain.ini"
    plain.write_text("[app:main]\nuse = call:tests.wsgi.test_paste:app_factory\n")
    args = [str(ini) if arg == "INI" else str(plain) if arg == "PLAIN" else arg for arg in args]
    outcome = check(capsys, *args)
    assert outcome.code == 2
    assert outcome.out == ""
    assert "error:" in outcome.err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "a command is required" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert "sso_middleware" in capsys.readouterr().out


# -- real processes ----------------------------------------------------------------------------------


def _env_for(settings: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SSO_")}
    env.update({f"SSO_{name.upper()}": value for name, value in settings.items()})
    return env


def test_python_dash_m_and_the_console_script(oidc_provider: DevProvider, tmp_path: Path) -> None:
    settings = settings_for(oidc_provider, tmp_path)
    settings_file = write_settings(tmp_path, settings)
    result = subprocess.run([sys.executable, "-m", "sso_middleware", "check", "--settings", settings_file],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ OK ] client credentials: client id and secret accepted" in result.stdout
    assert_clean(result.stdout + result.stderr)

    script = Path(sys.executable).parent / "sso-middleware"
    assert script.exists(), "pip install -e . installs the sso-middleware console script"
    result = subprocess.run([str(script), "check"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env=_env_for(settings))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(result.stdout + result.stderr)

    result = subprocess.run([str(script), "check", "--json"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=_env_for(dict(settings, client_secret=WRONG_SECRET)))
    assert result.returncode == 1
    assert json.loads(result.stdout)["exit_status"] == 1
    assert_clean(result.stdout + result.stderr)

    result = subprocess.run([str(script), "check", "--ini", str(tmp_path / "missing.ini")], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "ini file not found" in result.stderr


# -- nothing secret or hostile reaches the terminal ---------------------------------------------------

QUERY_PASSWORD = "MARK-query-pw-4f3e2d1c"


@pytest.mark.parametrize("url_of", [
    pytest.param(lambda port: f"redis://127.0.0.1:{port}/0?password={QUERY_PASSWORD}", id="query"),
    pytest.param(lambda port: f"redis://127.0.0.1:{port}/0?db=0&password={QUERY_PASSWORD}", id="query-later"),
    pytest.param(lambda port: f"redis://:{QUERY_PASSWORD}@127.0.0.1:{port}/0", id="userinfo"),
    pytest.param(lambda port: f"redis://user:{QUERY_PASSWORD}@127.0.0.1:{port}/0", id="user-and-password"),
])
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_redis_password_in_session_url_is_never_printed(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                                          tmp_path: Path, url_of: Any, output: str) -> None:
    port = free_port()
    settings = mini_settings(mini, tmp_path, session_type="ext:redis", session_url=url_of(port),
                             session_store_timeout="1")
    args = ["--settings", settings] + (["--json"] if output == "json" else [])
    outcome = check(capsys, *args, secrets=(QUERY_PASSWORD, "mini-client-secret"))
    assert outcome.code == 1
    assert "redis at redis://" in outcome.out and f"127.0.0.1:{port}/0" in outcome.out
    assert "***" in outcome.out


def test_a_postgresql_store_is_probed_and_its_password_never_printed(capsys: pytest.CaptureFixture[str],
                                                                      mini: MiniProvider, tmp_path: Path) -> None:
    server = PostgresServer().start()
    try:
        settings = mini_settings(mini, tmp_path, session_type="postgresql", session_url=server.url)
        outcome = check(capsys, "--settings", settings, secrets=(APP_PASSWORD, "mini-client-secret"))
        assert outcome.code == 0, outcome.out
        assert "postgresql 15" in outcome.line("OK", "session store")
        assert f"at postgresql://sso_app:***@127.0.0.1:{server.port}/sso answers as role sso_app" in outcome.out
        assert "does not exist yet: created on first use" in outcome.line("INFO", "session store")
        wrong = mini_settings(mini, tmp_path, session_type="postgresql",
                              session_url=server.url_as("sso_app", "wrong-" + APP_PASSWORD))
        outcome = check(capsys, "--settings", wrong, secrets=(APP_PASSWORD, "mini-client-secret"))
        assert_only_failure(outcome, "session store", "postgresql at postgresql://sso_app:***@", "does not answer")
    finally:
        server.close()


PERCENT_SECRET = "pct-app1%MARK-tail-0123456789abcdef"

INI_PERCENT = """\
[filter:sso]
use = egg:sso_middleware#main
issuer = {issuer}
client_id = app1
client_secret = {client_secret}
session_secret = {session_secret}
base_url = {base_url}
allow_insecure_http = true
"""


@pytest.mark.parametrize(("secret", "error"), [
    pytest.param(PERCENT_SECRET, "InterpolationSyntaxError", id="bare-percent"),
    pytest.param("pct-app1%(nope)sMARK-tail-0123456789abcdef", "InterpolationMissingOptionError", id="percent-key"),
])
def test_a_percent_in_an_ini_secret_is_not_printed(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                                   tmp_path: Path, secret: str, error: str) -> None:
    path = tmp_path / "deploy.ini"
    path.write_text(INI_PERCENT.format(issuer=mini.issuer, client_secret=secret, session_secret=SESSION_SECRET,
                                       base_url=BASE_URL))
    outcome = check(capsys, "--ini", str(path), secrets=(secret, "MARK-tail", "0123456789abcdef"))
    assert outcome.code == 1
    line = outcome.line("FAIL", "configuration")
    assert error in line and "client_secret" in line, line
    assert "%%" in line, line  # says how to write a literal '%'


def test_an_ini_line_that_does_not_parse_is_not_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "deploy.ini"
    path.write_text("[filter:sso]\nuse = egg:sso_middleware#main\nclient_secret MARK-no-equals-secret-99\n")
    outcome = check(capsys, "--ini", str(path), secrets=("MARK-no-equals",))
    assert outcome.code == 2
    assert "line 3" in outcome.err, outcome.err


def test_a_secret_before_any_ini_section_is_not_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A line outside any section is a MissingSectionHeaderError, which quotes the line (and, unlike other
    parsing errors, has no ``errors`` list): a usage error naming the line, never a traceback or the secret."""
    path = tmp_path / "deploy.ini"
    path.write_text("client_secret = MARK-before-section-secret-77\n[filter:sso]\nuse = egg:sso_middleware#main\n")
    outcome = check(capsys, "--ini", str(path), secrets=("MARK-before-section",))
    assert outcome.code == 2
    assert "line 1" in outcome.err, outcome.err


HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202e"
ESCAPED = "\\x1b]0;owned\\x07\\x1b[2J\\u202e"


@pytest.mark.parametrize("output", ["text", "json"])
def test_provider_strings_are_printed_escaped(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                              tmp_path: Path, output: str) -> None:
    mini.discovery_changes["response_types_supported"] = [HOSTILE + "code"]
    mini.jwks = {"keys": [public_jwk(rsa_key(), "kid" + HOSTILE)]}
    args = ["--settings", mini_settings(mini, tmp_path)] + (["--json"] if output == "json" else [])
    outcome = check(capsys, *args)
    assert "\x1b" not in outcome.out and "\x07" not in outcome.out and "\u202e" not in outcome.out
    if output == "json":
        messages = [result["message"] for result in json.loads(outcome.out)["results"]]
    else:
        messages = outcome.out.splitlines()
    assert not [m for m in messages if "\x1b" in m or "\x07" in m or "\u202e" in m], messages
    assert any(f"kid kid{ESCAPED}" in m for m in messages), messages  # the usable key's kid
    assert any(f"({ESCAPED}code)" in m for m in messages), messages  # response_types_supported

    # the key types of a JWKS without a usable key, too
    mini.jwks = {"keys": [{"kty": "RSA" + HOSTILE, "kid": "x", "n": "AQAB", "e": "AQAB"}]}
    outcome = check(capsys, *args)
    assert "\x1b" not in outcome.out and "\x07" not in outcome.out
    assert f"RSA{ESCAPED}" in outcome.out.replace("\\\\", "\\"), outcome.out


# -- helpers -----------------------------------------------------------------------------------------


def test_redaction_helpers() -> None:
    assert redact_url("redis://:pw1234@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://user:pw1234@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert redact_url("redis://host:6379/0?password=pw1234") == "redis://host:6379/0?password=***"
    assert redact_url("redis://host/0?db=1&PASSWORD=pw1234&x=y") == "redis://host/0?db=1&PASSWORD=***&x=y"
    # redis-py decodes query keys: %70assword is password too
    assert redact_url("redis://host/0?%70assword=pw%31234&db=1") == "redis://host/0?%70assword=***&db=1"
    assert "pw1234" in url_passwords("redis://host/0?%70assword=pw%31234")
    assert redact_url("redis://host/0?passwordx=1") == "redis://host/0?passwordx=1"
    redact = Redactor(["s3cret/value", None, "ab"])
    assert redact("x s3cret/value y s3cret%2Fvalue ab") == "x *** y *** ab"


def test_pieces_of_a_secret_are_masked_but_public_values_are_not() -> None:
    redact = Redactor(["app1-0123456789abcdefghij"], public=["app1"])
    # any run of 8 or more characters of a secret: the tail an error message quoted, the middle
    assert redact("found: '456789abcdefghij' and 789abcde.") == "found: '***' and ***."
    assert redact("client_id app1, 01234567") == "client_id app1, ***"
    assert redact("short 0123456 stays") == "short 0123456 stays"  # 7 characters: too short to tell
    redact = Redactor(["mini-client-secret"], public=["mini-client"])
    assert redact("client_id mini-client; the secret mini-client-secret; its tail client-secret") == (
        "client_id mini-client; the secret ***; its tail ***")



# -- response_mode = form_post, several base_url origins (issue 14 parts 6 and 7) ----------------


@pytest.mark.parametrize(("modes", "fragment"), [
    (None, "publishes no response_modes_supported, which means query and fragment only"),
    (["query", "fragment"], "form_post is not among the provider's response_modes_supported (query, fragment)"),
])
def test_form_post_needs_the_provider_to_advertise_it(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                                      tmp_path: Path, modes: Any, fragment: str) -> None:
    mini.discovery_changes["response_modes_supported"] = modes
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, response_mode="form_post"))
    assert_only_failure(outcome, "provider capabilities", fragment, "set response_mode = query")
    # query mode asks nothing of the provider
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert outcome.code == 0, outcome.out


def test_form_post_against_the_real_provider(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                             tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, response_mode="form_post")
    assert outcome.code == 0, outcome.out
    assert "response_mode form_post supported" in outcome.line("OK", "provider capabilities")
    assert "a GET is refused" in outcome.out


def test_several_base_urls_list_every_url_to_register(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                                      tmp_path: Path) -> None:
    outcome = check(capsys, "--settings", mini_settings(
        mini, tmp_path, base_url="http://127.0.0.1:5001 http://localhost:5001", cookie_domain="localhost"))
    assert "base_url lists 2 origins" in outcome.out
    for origin in ("http://127.0.0.1:5001", "http://localhost:5001"):
        assert f"Allowed Callback URL (redirect_uri): {origin}/auth/callback" in outcome.out
        assert f"Allowed Logout URL (post_logout_redirect_uri): {origin}/" in outcome.out
    # a cookie_domain is checked against every listed host
    assert "cookie_domain localhost does not domain-match base_url's host 127.0.0.1" in outcome.line("FAIL", "cookies")
    assert "covers base_url's host localhost" in outcome.line("OK", "cookies")
