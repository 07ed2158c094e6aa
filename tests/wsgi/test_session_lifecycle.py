"""A session's life across users and copies: who owns the outer session, and what sign-out ends.

Attacks played here:

* ``session_type = environ``: the application keeps its own data in the outer
  Beaker session; a second user signing in on the same browser must not inherit
  the first user's data (issue 13, item 7).
* A copy of the session cookie taken before ``/auth/logout`` must not stay
  signed in, for stores whose records cannot be deleted server-side (the cookie
  store, the environ store over an outer cookie session) and across the worker
  processes of one host that share the data folder (issue 13, item 9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

import pytest
import webtest
from beaker.middleware import SessionMiddleware

from sso_middleware import SSOMiddleware
from sso_middleware._session.state import StoreUnavailable

from ..fakes import FakeProvider

CONNECTION = "Username-Password-Authentication"
OUTER_SECRET = "outer-app-secret-" + "o" * 30
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"}

Browser = webtest.TestApp


def outer_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """An app with its own data in the outer Beaker session: ``/note?text=x`` adds, ``/page`` shows."""
    session = environ["beaker.session"]
    if environ.get("PATH_INFO") == "/note":
        session["notes"] = [*session.get("notes", []), parse_qs(environ.get("QUERY_STRING", ""))["text"][0]]
        session.save()
    body = json.dumps({"remote_user": environ.get("REMOTE_USER"), "notes": session.get("notes"),
                       "keys": sorted(key for key in session if not key.startswith("_")),
                       "session_id": session.id}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def outer_options(kind: str, tmp_path: Path) -> dict[str, Any]:
    if kind == "file":
        return {"type": "file", "data_dir": str(tmp_path / "outer"), "lock_dir": str(tmp_path / "outer-locks"),
                "secret": OUTER_SECRET}
    return {"type": "cookie", "encrypt_key": "e" * 32, "validate_key": OUTER_SECRET}


def environ_app(make_middleware: Callable[..., SSOMiddleware], kind: str, tmp_path: Path) -> Any:
    inner = make_middleware(outer_app, session_type="environ")
    return SessionMiddleware(inner, key="app_session", data_serializer="json", httponly=True,
                             **outer_options(kind, tmp_path))


def sign_in(browser: Browser, provider: FakeProvider, user: str = "alice") -> None:
    """An interactive sign-in (``/auth/login`` always signs in, even over an existing session)."""
    response = browser.get("/auth/login", {"target_url": "/page"})
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.status_int == 303 and response.location == "https://app2.example/page", response.location


def view(browser: Browser) -> dict[str, Any]:
    result: dict[str, Any] = browser.get("/page").json
    return result


def replay(app: Any, cookies: dict[str, str]) -> Browser:
    """Another browser (the attacker's) holding copies of ``cookies``."""
    copy = webtest.TestApp(app, extra_environ=HTTPS)
    for name, value in cookies.items():
        copy.set_cookie(name, value)
    return copy


# -- item 7: the environ store and the previous user's data --------------------------------


@pytest.mark.parametrize("kind", ["file", "cookie"])
def test_environ_another_user_never_sees_the_previous_users_data(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, tmp_path: Path, kind: str
) -> None:
    app = environ_app(make_middleware, kind, tmp_path)
    browser = webtest.TestApp(app, extra_environ=HTTPS)
    sign_in(browser, provider, "alice")
    browser.get("/note", {"text": "alice's secret"})
    alices = view(browser)
    assert alices["remote_user"] == "alice" and alices["notes"] == ["alice's secret"]
    alice_cookie = browser.cookies["app_session"]

    sign_in(browser, provider, "bob")  # the same browser, no sign-out in between
    bobs = view(browser)
    assert bobs["remote_user"] == "bob"
    assert bobs["notes"] is None, "bob sees alice's application data"
    assert [key for key in bobs["keys"] if not key.startswith("sso_middleware.")] == []
    if kind == "file":
        assert bobs["session_id"] != alices["session_id"]
        # alice's record is gone server-side: her old cookie holds nothing any more
        old = view(replay(app, {"app_session": alice_cookie}))
        assert old["remote_user"] is None and old["notes"] is None


@pytest.mark.parametrize("kind", ["file", "cookie"])
def test_environ_the_same_user_signing_in_again_keeps_the_apps_data(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, tmp_path: Path, kind: str
) -> None:
    browser = webtest.TestApp(environ_app(make_middleware, kind, tmp_path), extra_environ=HTTPS)
    sign_in(browser, provider, "alice")
    browser.get("/note", {"text": "draft"})
    sign_in(browser, provider, "alice")
    again = view(browser)
    assert again["remote_user"] == "alice" and again["notes"] == ["draft"]


@pytest.mark.parametrize("kind", ["file", "cookie"])
def test_environ_anonymous_data_is_kept_through_a_first_sign_in(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, tmp_path: Path, kind: str
) -> None:
    browser = webtest.TestApp(environ_app(make_middleware, kind, tmp_path), extra_environ=HTTPS)
    browser.get("/note", {"text": "cart"})
    sign_in(browser, provider, "alice")
    assert view(browser)["notes"] == ["cart"]


# -- item 9: sign-out ends copies of the cookie ------------------------------------------------


STORES = [
    pytest.param({"session_type": "cookie"}, None, id="cookie"),
    pytest.param({"session_type": "environ"}, "cookie", id="environ-over-cookie"),
    pytest.param({"session_type": "environ"}, "file", id="environ-over-file"),
    pytest.param({}, None, id="file"),
]


def build(make_middleware: Callable[..., SSOMiddleware], settings: dict[str, Any], outer: Optional[str],
          tmp_path: Path) -> Any:
    if outer is None:
        return make_middleware(**settings)
    return environ_app(make_middleware, outer, tmp_path)


def session_cookies(browser: Browser) -> dict[str, str]:
    return {name: value for name, value in browser.cookies.items() if "_tx_" not in name}


@pytest.mark.parametrize(("store", "outer"), STORES)
def test_a_cookie_copied_before_sign_out_is_anonymous_after_it(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, tmp_path: Path,
    store: dict[str, Any], outer: Optional[str],
) -> None:
    app = build(make_middleware, store, outer, tmp_path)
    browser = webtest.TestApp(app, extra_environ=HTTPS)
    sign_in(browser, provider)
    stolen = session_cookies(browser)
    assert view(replay(app, stolen))["remote_user"] == "alice"  # the copy works while signed in
    browser.get("/auth/logout")
    assert view(browser)["remote_user"] is None
    assert view(replay(app, stolen))["remote_user"] is None, "a copy of the cookie outlived the sign-out"


@pytest.mark.parametrize(("store", "outer"), STORES[:3])
def test_sign_out_reaches_every_process_sharing_the_data_folder(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, tmp_path: Path,
    store: dict[str, Any], outer: Optional[str],
) -> None:
    one = build(make_middleware, store, outer, tmp_path)  # two worker processes of one host
    other = build(make_middleware, store, outer, tmp_path)
    browser = webtest.TestApp(one, extra_environ=HTTPS)
    sign_in(browser, provider)
    stolen = session_cookies(browser)
    assert view(replay(other, stolen))["remote_user"] == "alice"  # the other process has read its state
    browser.get("/auth/logout")
    assert view(replay(other, stolen))["remote_user"] is None
    assert view(replay(one, stolen))["remote_user"] is None


def test_signing_in_again_ends_the_previous_sign_in_of_a_cookie_session(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """A cookie replaced by a new sign-in is the end of the old one, as the old record's deletion is elsewhere."""
    app = make_middleware(session_type="cookie")
    browser = webtest.TestApp(app, extra_environ=HTTPS)
    sign_in(browser, provider, "alice")
    alices = session_cookies(browser)
    sign_in(browser, provider, "bob")
    assert view(browser)["remote_user"] == "bob"
    assert view(replay(app, alices))["remote_user"] is None


def test_signing_in_after_a_sign_out_works(make_middleware: Callable[..., SSOMiddleware],
                                           provider: FakeProvider) -> None:
    app = make_middleware(session_type="cookie")
    browser = webtest.TestApp(app, extra_environ=HTTPS)
    sign_in(browser, provider)
    browser.get("/auth/logout")
    sign_in(browser, provider)
    assert view(browser)["remote_user"] == "alice"


# -- the host-wide registry ------------------------------------------------------------------


def test_the_registry_file_is_private_and_never_follows_a_link(tmp_path: Path) -> None:
    from sso_middleware._session.revocations import Revocations

    folder = tmp_path / "data"
    registry = Revocations(str(folder), horizon=100.0)
    registry.record(["login:x"], 1000.0)
    path = Path(registry.path)
    assert path.parent == folder and path.name.startswith("revocations-")
    assert path.stat().st_mode & 0o777 == 0o600
    assert registry.revoked_since(["login:x"], 999.0)
    path.unlink()
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.symlink(target, path)
    with pytest.raises(StoreUnavailable):  # a link is refused, never followed
        Revocations(str(folder), horizon=100.0).record(["login:y"], 1000.0)
    assert target.read_text() == ""


def test_the_registry_keeps_no_names_in_clear(tmp_path: Path) -> None:
    from sso_middleware._session.revocations import Revocations

    registry = Revocations(str(tmp_path), horizon=100.0)
    registry.record(["sub:alice@example.com", "sid:provider-session-1"], 1000.0)
    text = Path(registry.path).read_text()
    assert "alice" not in text and "provider-session" not in text


def test_the_registry_sees_other_processes_and_is_compacted(tmp_path: Path) -> None:
    from sso_middleware._session.revocations import Revocations

    writer = Revocations(str(tmp_path), horizon=100.0)
    reader = Revocations(str(tmp_path), horizon=100.0)
    assert not reader.revoked_since(["login:a"], 0.0)
    writer.record(["login:a"], 1000.0)
    assert reader.revoked_since(["login:a"], 999.0)
    assert not reader.revoked_since(["login:a"], 1001.0)  # a later sign-in is not undone
    for number in range(3000):
        writer.record([f"login:{number}"], 1000.0)
    size = Path(writer.path).stat().st_size
    writer.record(["login:late"], 1200.0)  # everything before 1100 is past the horizon: compacted
    assert Path(writer.path).stat().st_size < size / 100
    assert reader.revoked_since(["login:late"], 1150.0)
    assert not reader.revoked_since(["login:a"], 0.0)


def test_applications_sharing_a_folder_never_compact_each_others_revocations(tmp_path: Path) -> None:
    """Each application (its key) has its own journal, compacted by its own horizon."""
    from sso_middleware._session.revocations import Revocations

    short = Revocations(str(tmp_path), horizon=100.0, key=b"app-with-a-short-timeout")
    long = Revocations(str(tmp_path), horizon=100000.0, key=b"app-with-a-long-timeout")
    assert short.path != long.path
    long.record(["login:kept"], 1000.0)
    for number in range(3000):
        short.record([f"login:{number}"], 1000.0)
    short.record(["login:late"], 1200.0)  # compacts its own journal
    fresh = Revocations(str(tmp_path), horizon=100000.0, key=b"app-with-a-long-timeout")
    assert fresh.revoked_since(["login:kept"], 999.0)


def test_a_journal_replaced_under_a_reused_inode_is_read_again_from_its_start(tmp_path: Path) -> None:
    """Readers tell journals apart by inode *and* first line: a compaction whose new file got the old
    inode number back (or any rewrite in place) is read whole, not from the old offset."""
    from sso_middleware._session.revocations import Revocations

    writer = Revocations(str(tmp_path), horizon=100.0)
    reader = Revocations(str(tmp_path), horizon=100.0)
    writer.record(["login:old"], 1000.0)
    assert reader.revoked_since(["login:old"], 999.0)  # the reader's offset is now the journal's size
    replacement = Revocations(str(tmp_path / "elsewhere"), horizon=100.0)
    replacement.record(["login:new"], 1001.0)
    replacement.record([f"login:filler-{number}" for number in range(5)], 1001.0)
    with open(writer.path, "r+b") as journal:  # same inode, other content, longer than before
        journal.write(Path(replacement.path).read_bytes())
    assert reader.revoked_since(["login:new"], 1000.0)


def test_the_hot_path_check_is_cheap(tmp_path: Path) -> None:
    """One ``os.stat`` and a few dict lookups per signed-in request; measured, printed with ``-s``."""
    from sso_middleware._session.revocations import Revocations

    registry = Revocations(str(tmp_path), horizon=1e9)
    for number in range(1000):
        registry.record([f"login:{number}"], 1000.0)
    keys = ["login:unknown", "sid:s", "sub:alice"]
    assert not registry.revoked_since(keys, 0.0)
    runs = 20000
    seconds = timeit.timeit(lambda: registry.revoked_since(keys, 0.0), number=runs)
    print(f"revocation check: {seconds / runs * 1e6:.2f} µs per signed-in request")
    assert seconds / runs < 200e-6


def test_the_hot_path_check_reads_nothing_while_the_journal_is_unchanged(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes the check cheap, counted rather than timed: one ``lstat``, no open, until someone writes."""
    from sso_middleware._session import revocations as module
    from sso_middleware._session.revocations import Revocations

    registry = Revocations(str(tmp_path), horizon=1e9)
    registry.record(["login:old"], 1000.0)
    assert registry.revoked_since(["login:old"], 999.0)
    calls: list[str] = []
    real_lstat, real_open = os.lstat, os.open
    monkeypatch.setattr(module.os, "lstat", lambda *a, **k: calls.append("lstat") or real_lstat(*a, **k))
    monkeypatch.setattr(module.os, "open", lambda *a, **k: calls.append("open") or real_open(*a, **k))
    for _ in range(5):
        assert not registry.revoked_since(["login:unknown"], 0.0)
    assert calls == ["lstat"] * 5
    Revocations(str(tmp_path), horizon=1e9).record(["login:new"], 1001.0)  # another process writes
    calls.clear()
    assert registry.revoked_since(["login:new"], 1000.0)
    assert calls.count("open") == 1  # read once, only what was appended


def test_a_revocation_written_by_another_os_process_is_seen(tmp_path: Path) -> None:
    """Real worker processes: a separate Python process records, this one reads (and the other way round)."""
    from sso_middleware._session.revocations import Revocations

    here = Revocations(str(tmp_path), horizon=1e6, key=b"k")
    assert not here.revoked_since(["login:from-the-child"], 0.0)  # read once: the cached state is "nothing"
    child = ("import sys; from sso_middleware._session.revocations import Revocations; "
             "r = Revocations(sys.argv[1], horizon=1e6, key=b'k'); r.record(['login:from-the-child'], 5.0); "
             "sys.exit(0 if r.revoked_since(['login:from-the-parent'], 1.0) else 3)")
    here.record(["login:from-the-parent"], 2.0)
    subprocess.run([sys.executable, "-c", child, str(tmp_path)], check=True, timeout=60)
    assert here.revoked_since(["login:from-the-child"], 4.0)
    assert not here.revoked_since(["login:from-the-child"], 6.0)


def test_revocations_are_bound_to_their_application(settings: dict[str, Any], tmp_path: Path) -> None:
    """Two applications sharing session_secret and a data folder (cookie store): a back-channel logout of
    one's ``sub`` (or ``sid``) is no revocation in the other, whose users come from another client (or
    issuer) -- the journal's names are keyed per application, like every other key derived from the secret."""
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore, SignedInUser

    shared = {**settings, "session_type": "cookie", "session_data_dir": str(tmp_path / "shared")}
    one = SessionStore(SSOConfig(**shared))
    other = SessionStore(SSOConfig(**{**shared, "client_id": "another-client"}))
    user = SignedInUser(claims={"sub": "alice"}, connection=None, id_token="h.p.s", signed_in_at=1000.0,
                        sid="op-session-1", login_id="login-1")
    one.end_sessions("op-session-1", "alice", 2000.0)
    assert one.is_revoked(user)
    assert not other.is_revoked(user), "one application's back-channel logout revoked another's sessions"


@pytest.mark.parametrize("session_type", ["cookie", "environ"])
def test_a_data_folder_planted_before_start_up_stops_the_deployment(settings: dict[str, Any], tmp_path: Path,
                                                                   session_type: str) -> None:
    """The revocation journal's folder is checked (and created 0700) when the middleware is built.

    Checked only at the first sign-out (as first written), a folder another local user created
    beforehand (the default one is predictable: ``<tmp>/sso_middleware-<uid>``) made every sign-out
    fail: a failure page, the session cookie kept, no revocation other workers could see.
    """
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore
    from sso_middleware.errors import ConfigError

    folder = tmp_path / "journal"
    folder.mkdir()
    folder.chmod(0o777)  # what a pre-created folder of another user looks like to the check
    with pytest.raises(ConfigError) as refused:
        SessionStore(SSOConfig(**{**settings, "session_type": session_type, "session_data_dir": str(folder)}))
    assert refused.value.setting == "session_data_dir"
    fresh = tmp_path / "fresh"
    SessionStore(SSOConfig(**{**settings, "session_type": session_type, "session_data_dir": str(fresh)}))
    assert fresh.stat().st_mode & 0o777 == 0o700 and list(fresh.iterdir()) == []  # created now, still empty
