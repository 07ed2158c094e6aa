"""The dev provider's Front-Channel Logout 1.0 (``devprovider/frontchannel.mjs``), spoken to directly.

Its registration rules, its discovery members, and the page a confirmed logout answers with:
which clients it frames, with which ``iss``/``sid``, and where it goes on to.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from sso_middleware.testing import DevProvider, DevProviderError
from sso_middleware.testing.forms import frames_and_links

from ..servers import free_port
from .test_devprovider import exchange_code, sign_in, verify_id_token

PORT = free_port()
RP = f"http://127.0.0.1:{PORT}"
#: The paths (with queries) the relying party's server was asked for: the frames loaded.
LOADED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def relying_party() -> Iterator[None]:
    """The relying party's front-channel URIs answer 200 (what the frames load)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            LOADED.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"signed out")

    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    server.shutdown()
    server.server_close()


def register(provider: DevProvider, **metadata: Any) -> Any:
    return provider.register_client([RP + "/auth/callback"], [RP + "/"], **metadata)


def test_discovery_advertises_front_channel_logout_with_sid(oidc_provider: DevProvider) -> None:
    document = requests.get(oidc_provider.issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10).json()
    assert document["frontchannel_logout_supported"] is True
    assert document["frontchannel_logout_session_supported"] is True


@pytest.mark.parametrize(("metadata", "message"), [
    pytest.param({"frontchannel_logout_uri": f"http://127.0.0.2:{PORT}/fc"}, "scheme, host and port",
                 id="other-origin"),
    pytest.param({"frontchannel_logout_uri": RP + "/fc#x"}, "without a fragment", id="fragment"),
    pytest.param({"frontchannel_logout_uri": "javascript:alert(1)"}, "http(s)", id="scheme"),
    pytest.param({"frontchannel_logout_uri": "/fc"}, "absolute", id="relative"),
    pytest.param({"frontchannel_logout_uri": RP + "/fc", "frontchannel_logout_session_required": "yes"}, "boolean",
                 id="not-boolean"),
])
def test_registration_refuses_bad_front_channel_metadata(oidc_provider: DevProvider, metadata: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(DevProviderError, match="invalid_client_metadata") as refused:
        register(oidc_provider, **metadata)
    assert message in str(refused.value)


def logout_page(provider: DevProvider, browser: requests.Session, client: Any, logout: bool = True) -> Any:
    query = urlencode({"client_id": client.client_id, "post_logout_redirect_uri": RP + "/", "state": "s<1>"})
    return provider.logout_confirm(browser, f"{provider.endpoint('end_session')}?{query}", logout=logout)


def test_a_confirmed_logout_frames_each_client_with_iss_and_its_own_sid(oidc_provider: DevProvider) -> None:
    with_sid = register(oidc_provider, frontchannel_logout_uri=RP + "/fc?app=one")
    without_sid = register(oidc_provider, frontchannel_logout_uri=RP + "/fc?app=two",
                           frontchannel_logout_session_required=False)
    plain = register(oidc_provider)  # no frontchannel_logout_uri: not framed
    browser = requests.Session()
    sids = {}
    for rp in (with_sid, without_sid, plain):
        authorization, params = sign_in(oidc_provider, browser, rp)
        tokens = exchange_code(oidc_provider, rp, params["code"], authorization.verifier).json()
        sids[rp.client_id] = verify_id_token(oidc_provider, rp, tokens["id_token"])["sid"]
    oidc_provider.clear_events()

    page = logout_page(oidc_provider, browser, with_sid)
    assert page.status_code == 200 and page.headers["Cache-Control"].startswith("no-store")
    frames, links = frames_and_links(page)
    queries = {parse_qs(urlsplit(src).query)["app"][0]: parse_qs(urlsplit(src).query) for src in frames}
    assert queries == {"one": {"app": ["one"], "iss": [oidc_provider.issuer], "sid": [sids[with_sid.client_id]]},
                       "two": {"app": ["two"]}}
    assert links["frontchannel-continue"] == RP + "/?state=s%3C1%3E"  # the redirect it replaced, escaped in HTML
    assert "s<1>" not in page.text
    assert sorted(LOADED[-2:]) == sorted(urlsplit(src).path + "?" + urlsplit(src).query for src in frames)
    events = oidc_provider.events("frontchannel_logout")
    assert sorted(event["client_id"] for event in events) == sorted([with_sid.client_id, without_sid.client_id])


def test_stay_signed_in_frames_only_the_initiating_client(oidc_provider: DevProvider) -> None:
    """Without ``logout=yes`` oidc-provider ends only the initiating client's authorization: only it is framed."""
    initiator = register(oidc_provider, frontchannel_logout_uri=RP + "/fc?app=initiator")
    other = register(oidc_provider, frontchannel_logout_uri=RP + "/fc?app=other")
    browser = requests.Session()
    for rp in (initiator, other):
        sign_in(oidc_provider, browser, rp)
    page = logout_page(oidc_provider, browser, initiator, logout=False)
    frames, _ = frames_and_links(page)
    assert [parse_qs(urlsplit(src).query)["app"][0] for src in frames] == ["initiator"]


def test_no_front_channel_client_keeps_the_plain_redirect(oidc_provider: DevProvider) -> None:
    plain = register(oidc_provider)
    browser = requests.Session()
    sign_in(oidc_provider, browser, plain)
    response = logout_page(oidc_provider, browser, plain)
    assert response.status_code == 303 and response.headers["Location"].startswith(RP + "/")
