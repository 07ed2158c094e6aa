"""Front-channel logout end to end against the real dev provider, with real waitress servers.

Two wrapped applications register ``frontchannel_logout_uri`` (and no back-channel URI, so
nothing else can end a session); the user signs in at one and reaches the other silently
through the same provider session (one ``sid`` per client); signing out at the first
(RP-initiated logout, confirmed at the provider) makes the provider answer with its page of
iframes.  The frames are loaded the way a browser loads a cross-site iframe: without the
applications' ``SameSite=Lax`` cookies.  With ``iss``/``sid`` that ends the other
application's session; without them (``frontchannel_logout_session_required`` false) it
cannot, and only a same-site frame (one that carries the cookie) does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware
from sso_middleware.testing import DevProvider
from sso_middleware.testing.forms import frames_and_links

from ..conftest import SESSION_SECRET, legacy_app
from ..servers import free_port, stop_waitress
from .test_integration import CONNECTION, browse, page

PATH = "/auth/frontchannel-logout"


class FrontApp:
    """A wrapped application whose client registered a front-channel logout URI."""

    def __init__(self, provider: DevProvider, tmp: Path, name: str, with_sid: bool = True, *,
                 host: str = "127.0.0.1", tagged: bool = True) -> None:
        port = free_port()
        self.base_url = f"http://{host}:{port}"
        # ``tagged``: the URI has a query of its own, which the provider must keep (section 2).
        self.client = provider.register_client(
            [self.base_url + "/auth/callback"], post_logout_redirect_uris=[self.base_url + "/"], client_name=name,
            frontchannel_logout_uri=self.base_url + PATH + ("?app=" + name if tagged else ""),
            frontchannel_logout_session_required=with_sid,
        )
        self.middleware = SSOMiddleware(
            legacy_app, issuer=provider.issuer, client_id=self.client.client_id,
            client_secret=self.client.client_secret, base_url=self.base_url, session_secret=SESSION_SECRET,
            session_data_dir=str(tmp / name), allow_insecure_http=True, cookie_name=f"{name}_session",
            frontchannel_logout_path=PATH,
        )
        self.server = waitress.create_server(self.middleware, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def who(self, http: requests.Session) -> str | None:
        user: str | None = page(browse(http, self.url("/public")))["remote_user"]
        return user


@pytest.fixture(scope="module")
def apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FrontApp]]:
    tmp = tmp_path_factory.mktemp("frontchannel-sessions")
    started = {"one": FrontApp(oidc_provider, tmp, "fcone"), "two": FrontApp(oidc_provider, tmp, "fctwo"),
               "plain_one": FrontApp(oidc_provider, tmp, "fcplainone", with_sid=False),
               "plain_two": FrontApp(oidc_provider, tmp, "fcplaintwo", with_sid=False)}
    yield started
    for app in started.values():
        stop_waitress(app.server)


def signed_in_at_both(provider: DevProvider, first: FrontApp, second: FrontApp) -> requests.Session:
    """Alice signs in at ``first`` at the login form, then reaches ``second`` silently (one provider session)."""
    http = requests.Session()
    redirect = provider.login(http, "alice", first.url("/auth/login?target_url=/public"))
    browse(http, urljoin(redirect.url, redirect.headers["Location"]))
    provider.clear_events()
    assert page(browse(http, second.url(f"/auth/sso?connection={CONNECTION}&target_url=/public")))["remote_user"]
    assert not provider.events("interaction")  # silent: the same provider session
    assert first.who(http) == "alice" and second.who(http) == "alice"
    return http


def sign_out_at(provider: DevProvider, app: FrontApp, http: requests.Session) -> requests.Response:
    """RP-initiated logout at ``app``, confirmed at the provider: its page of frames (loaded without cookies)."""
    logout = http.get(app.url("/auth/logout?target_url=/"), allow_redirects=False, timeout=10)
    assert logout.headers["Location"].startswith(provider.endpoint("end_session_endpoint"))
    return provider.logout_confirm(http, logout)


def test_the_providers_logout_page_frames_the_other_app_and_its_session_ends(
    oidc_provider: DevProvider, apps: dict[str, FrontApp]
) -> None:
    one, two = apps["one"], apps["two"]
    http = signed_in_at_both(oidc_provider, one, two)
    oidc_provider.clear_events()
    frames_page = sign_out_at(oidc_provider, one, http)

    assert frames_page.status_code == 200 and oidc_provider.is_provider_url(frames_page.url)
    frames, links = frames_and_links(frames_page)
    by_app = {parse_qs(urlsplit(src).query)["app"][0]: src for src in frames}
    assert sorted(by_app) == ["fcone", "fctwo"]  # every client of the ended provider session
    query = parse_qs(urlsplit(by_app["fctwo"]).query)
    assert query["iss"] == [oidc_provider.issuer] and len(query["sid"]) == 1
    events = {event["client_id"]: event for event in oidc_provider.events("frontchannel_logout")}
    assert events[two.client.client_id]["sid"] == query["sid"][0]
    assert links["frontchannel-continue"].startswith(one.url("/"))

    # The frames were loaded without cookies (cross-site): the sid alone ended app two's session.
    assert two.who(http) is None
    assert one.who(http) is None  # its own sign-out, and its frame
    # One direct look at what a frame gets (the session is already gone: a harmless 200).
    answer = requests.get(by_app["fctwo"], timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-cache, no-store" and answer.headers["Pragma"] == "no-cache"
    assert answer.headers["Content-Security-Policy"] == (
        f"default-src 'none'; frame-ancestors {oidc_provider.issuer.rstrip('/')}")
    assert "X-Frame-Options" not in answer.headers
    # Following the page on: back at app one's post-logout target.
    assert browse(http, urljoin(frames_page.url, links["frontchannel-continue"])).urls[-1] == one.url("/")


def test_without_sid_a_cookieless_frame_ends_nothing_and_a_same_site_one_does(
    oidc_provider: DevProvider, apps: dict[str, FrontApp]
) -> None:
    one, two = apps["plain_one"], apps["plain_two"]
    http = signed_in_at_both(oidc_provider, one, two)
    frames_page = sign_out_at(oidc_provider, one, http)
    frames, _ = frames_and_links(frames_page)
    (frame,) = [src for src in frames if src.startswith(two.base_url)]
    assert "sid=" not in frame and "iss=" not in frame  # the client did not ask for them

    # Loaded as a cross-site iframe (no cookie): nothing names the session, so it survives.
    assert two.who(http) == "alice"
    # Loaded as a same-site iframe would be (the browser's cookies go along): the cookie's session ends.
    assert http.get(frame, timeout=10).status_code == 200
    assert two.who(http) is None
