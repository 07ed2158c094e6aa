"""TLS to Redis (``rediss://``, ``session_tls_ca_file``, ``session_tls_cert_file``/``_key_file``) on a real server.

Debian's ``redis-server`` (built with TLS) listens on a TLS port only (``--port 0``), with
a server certificate from a CA made for the test (:mod:`tests.pki`), and asks clients for a
certificate of that CA (``--tls-auth-clients yes``).  A sign-in works over it; a wrong CA,
a missing client certificate or a plain ``redis://`` URL to the TLS port is a clean 503
within the store timeout (never a hang, never a 500), and the doctor names the setting to fix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from sso_middleware import SSOMiddleware
from sso_middleware.testing import DevProvider

from ..conftest import browser_for
from ..fakes import FakeProvider
from ..pki import CertificateAuthority
from ..redis_ha_servers import TlsRedis
from ..store_load import check_backchannel_logout, check_lock, sign_in_users, who
from .test_doctor import assert_only_failure, run_settings

COOKIE = "__Host-sso_session"
TIMEOUT = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    started = TlsRedis(tmp_path_factory.mktemp("redis-tls"), clients_need_certificates=True).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("other-ca"), name="someone else's CA")


def tls_settings(server: TlsRedis, **changes: str) -> dict[str, Any]:
    settings = {"session_type": "ext:redis", "session_url": server.url, "session_store_timeout": TIMEOUT,
                "session_tls_ca_file": str(server.ca.cert), "session_tls_cert_file": str(server.client.cert),
                "session_tls_key_file": str(server.client.key), **changes}
    return {name: value for name, value in settings.items() if value}


def test_sessions_locks_and_logout_work_over_tls_with_a_client_certificate(
        server: TlsRedis, make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = make_middleware(**tls_settings(server))
    browsers = sign_in_users(middleware, provider, 2)
    # The records are on that server (read with a client of our own, over TLS).
    assert any(key.endswith(":session") for key in server.admin().scan_iter("sso_middleware:*"))
    check_lock(middleware.store.backend)
    check_backchannel_logout(browsers, "user0")
    assert who(browsers["user1"]) == "user1"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"session_tls_ca_file": "OTHER_CA"}, id="wrong-ca"),
        pytest.param({"session_tls_ca_file": ""}, id="system-cas"),
        pytest.param({"session_tls_cert_file": "", "session_tls_key_file": ""}, id="no-client-certificate"),
        pytest.param({"session_tls_cert_file": "OTHER_CERT", "session_tls_key_file": "OTHER_KEY"},
                     id="client-certificate-of-another-ca"),
        pytest.param({"session_url": "PLAIN", "session_tls_ca_file": "", "session_tls_cert_file": "",
                      "session_tls_key_file": ""}, id="plain-redis-to-the-tls-port"),
    ],
)
def test_a_tls_mismatch_is_a_clean_503_within_the_timeout(
        server: TlsRedis, other_ca: CertificateAuthority, make_middleware: Callable[..., SSOMiddleware],
        provider: FakeProvider, changes: dict[str, str]) -> None:
    # A session that exists, then reached through a misconfigured middleware.
    good = sign_in_users(make_middleware(**tls_settings(server)), provider, 1)["user0"]
    stranger = other_ca.issue("stranger", client=True)
    files = {"OTHER_CA": str(other_ca.cert), "OTHER_CERT": str(stranger.cert), "OTHER_KEY": str(stranger.key),
             "PLAIN": server.url.replace("rediss://", "redis://")}
    misconfigured = browser_for(make_middleware(**tls_settings(server, **{
        name: files.get(value, value) for name, value in changes.items()})))
    misconfigured.set_cookie(COOKIE, good.cookies[COOKIE])
    started = time.monotonic()
    page = misconfigured.get("/page", status=503)
    assert time.monotonic() - started < 2 * TIMEOUT + 1
    assert "session_store_unavailable" in page.text and "Traceback" not in page.text
    assert who(good) == "user0"  # nothing was lost or changed


def test_the_doctor_reports_the_tls_files_and_names_the_setting_when_the_ca_is_wrong(
        server: TlsRedis, other_ca: CertificateAuthority, capsys: pytest.CaptureFixture[str],
        oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, **tls_settings(server))
    assert outcome.code == 0, outcome.out
    ok = outcome.line("OK", "session store")
    assert f"session_tls_ca_file {server.ca.cert}: 1 CA certificate(s)" in ok
    assert "session_tls_cert_file CN=sso client, issued by CN=redis test CA" in ok
    assert f"redis at {server.url} answers PING" in ok

    outcome = run_settings(capsys, oidc_provider, tmp_path, **tls_settings(server, session_tls_ca_file=str(
        other_ca.cert)))
    assert_only_failure(outcome, "session store", "does not answer PING", "CERTIFICATE_VERIFY_FAILED",
                        "session_tls_ca_file")

    outcome = run_settings(capsys, oidc_provider, tmp_path, **tls_settings(
        server, session_tls_cert_file="", session_tls_key_file=""))
    assert_only_failure(outcome, "session store", "does not answer PING", "session_tls_cert_file")
