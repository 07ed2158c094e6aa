"""The sign-in hook (``on_sign_in``) and ``userinfo_claims``, end to end through ``webtest`` and the FakeProvider.

Each outcome of the hook is a sign-in played by a cookie-keeping browser: claims changed
(what the application then sees), a denial (403, no session), a hook that fails (503
``sign_in_hook_failed``, one redacted log line, never a 500), a hook that tries to change
``sub``; and the allow-list of claims a session keeps, read back from the stored record.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Optional

import pytest
import webtest

from sso_middleware import SignInDenied, SignInTokens, SSOConfig, SSOMiddleware
from sso_middleware.errors import ConfigError, describe

from ..conftest import browser_for
from ..fakes import FakeProvider
from .test_handlers import failure_code, is_authorize, query, sign_in, start_sso, stored_sessions

Browser = webtest.TestApp
Hook = Callable[[dict[str, Any], SignInTokens, dict[str, Any]], Optional[dict[str, Any]]]
SCOPE = "openid profile email offline_access"


class Recorder:
    """A hook that records its calls and answers with ``answer(claims, tokens, environ)``."""

    def __init__(self, answer: Optional[Hook] = None) -> None:
        self.calls: list[tuple[dict[str, Any], SignInTokens, dict[str, Any]]] = []
        self.answer = answer

    def __call__(self, claims: dict[str, Any], tokens: SignInTokens, environ: dict[str, Any]) -> Any:
        self.calls.append((dict(claims), tokens, environ))
        return self.answer(claims, tokens, environ) if self.answer is not None else None


def provision(claims: dict[str, Any], tokens: SignInTokens, environ: dict[str, Any]) -> dict[str, Any]:
    """The README's example shape: deny unknown domains, add the application's own user id."""
    if not str(claims.get("email", "")).endswith("@example.com"):
        raise SignInDenied("not_provisioned")
    return {**claims, "app_user_id": 7}


not_callable = 42


def whoami(browser: Browser) -> dict[str, Any]:
    result: dict[str, Any] = browser.get("/dashboard").json
    return result


def has_session(browser: Browser) -> bool:
    return whoami(browser)["userinfo"] is not None


# -- what the hook receives --------------------------------------------------------------


def test_the_hook_gets_the_claims_the_tokens_and_the_environ_once_per_sign_in(
        make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    hook = Recorder()
    browser = make_browser(on_sign_in=hook, scope=SCOPE)
    sign_in(browser, provider)
    assert len(hook.calls) == 1
    claims, tokens, environ = hook.calls[0]
    assert claims["sub"] == "alice" and claims["email"] == "alice@example.com"
    assert "nonce" not in claims and "sid" not in claims  # protocol claims are not the user's
    assert tokens.id_token_claims["sid"] == "provider-session-1" and "nonce" in tokens.id_token_claims
    with pytest.raises(TypeError):
        tokens.id_token_claims["sub"] = "mallory"  # type: ignore[index]
    assert tokens.has_refresh_token is True
    assert tokens.scopes == frozenset(SCOPE.split())
    assert tokens.access_token_expires_at is not None
    assert tokens.access_token.startswith("at-") and tokens.id_token.count(".") == 2
    assert tokens.access_token not in repr(tokens) and tokens.id_token not in repr(tokens)
    assert environ["PATH_INFO"] == "/auth/callback"
    whoami(browser)
    whoami(browser)
    assert len(hook.calls) == 1  # requests of the session do not run it


def test_no_refresh_token_is_said_so(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    hook = Recorder()
    sign_in(make_browser(on_sign_in=hook), provider)
    assert hook.calls[0][1].has_refresh_token is False


def test_silent_sso_runs_the_hook(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    hook = Recorder(lambda claims, tokens, environ: {**claims, "seen": True})
    browser = make_browser(on_sign_in=hook)
    response = start_sso(browser)
    assert is_authorize(response) and query(response.location)["prompt"] == "none"
    browser.get(provider.authorize(response.location))
    assert len(hook.calls) == 1 and whoami(browser)["userinfo"]["seen"] is True


# -- changed claims ----------------------------------------------------------------------------


def test_returned_claims_are_what_the_application_sees(make_browser: Callable[..., Browser],
                                                       provider: FakeProvider) -> None:
    def hook(claims: dict[str, Any], tokens: SignInTokens, environ: dict[str, Any]) -> dict[str, Any]:
        return {"sub": claims["sub"], "app_user_id": 7, "roles": ["editor"]}

    browser = make_browser(on_sign_in=hook)
    sign_in(browser, provider)
    assert whoami(browser)["userinfo"] == {"sub": "alice", "app_user_id": 7, "roles": ["editor"]}


def test_a_hook_returning_none_keeps_its_changes_in_place(make_browser: Callable[..., Browser],
                                                          provider: FakeProvider) -> None:
    def hook(claims: dict[str, Any], tokens: SignInTokens, environ: dict[str, Any]) -> None:
        claims["app_user_id"] = 9
        del claims["email"]

    browser = make_browser(on_sign_in=hook)
    sign_in(browser, provider)
    userinfo = whoami(browser)["userinfo"]
    assert userinfo["app_user_id"] == 9 and "email" not in userinfo


def test_the_hook_can_change_remote_user_through_a_claim_of_its_own(make_browser: Callable[..., Browser],
                                                                    provider: FakeProvider) -> None:
    browser = make_browser(on_sign_in=provision, remote_user_claim="app_user_id")
    sign_in(browser, provider)
    assert whoami(browser)["remote_user"] == "7"


# -- denied, failed, refused ---------------------------------------------------------------------


def test_sign_in_denied_is_a_403_page_with_its_reason_and_no_session(
        make_browser: Callable[..., Browser], provider: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    provider.users["alice"]["email"] = "alice@elsewhere.example"
    browser = make_browser(on_sign_in=provision)
    response = sign_in(browser, provider)
    assert failure_code(response) == "sign_in_denied:not_provisioned"
    page = browser.get(response.location, status=403)
    assert "sign_in_denied:not_provisioned" in page.text and "does not let your account in" in page.text
    assert not any(cookie.name.endswith("sso_session") and cookie.value for cookie in browser.cookiejar)
    assert not has_session(browser)


@pytest.mark.parametrize("answer", [
    pytest.param(lambda c, t, e: {**c, "sub": "mallory"}, id="sub-changed"),
    pytest.param(lambda c, t, e: {"name": "Alice"}, id="sub-removed"),
    pytest.param(lambda c, t, e: {**c, "sub": None}, id="sub-none"),
    pytest.param(lambda c, t, e: ["sub", "alice"], id="not-a-mapping"),
    pytest.param(lambda c, t, e: {**c, "when": object()}, id="not-json"),
    pytest.param(lambda c, t, e: {**c, "nan": float("nan")}, id="nan"),
    pytest.param(lambda c, t, e: {**c, 3: "x"}, id="non-string-name"),
    pytest.param(lambda c, t, e: {**c, "big": "x" * 20000}, id="too-large"),
    pytest.param(lambda c, t, e: 1 / 0, id="raises"),
    pytest.param(lambda c, t, e: SignInDenied("not a code!"), id="bad-denial-reason"),
])
def test_a_failing_hook_is_sign_in_hook_failed_never_a_500(
        make_browser: Callable[..., Browser], provider: FakeProvider, caplog: pytest.LogCaptureFixture,
        answer: Hook) -> None:
    browser = make_browser(on_sign_in=Recorder(answer))
    with caplog.at_level(logging.ERROR, logger="sso_middleware"):
        response = sign_in(browser, provider)
    assert failure_code(response) == "sign_in_hook_failed"
    page = browser.get(response.location, status=503)
    assert "Traceback" not in page.text and "could not finish signing you in" in page.text
    assert not has_session(browser)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "on_sign_in" in errors[0].getMessage()
    assert errors[0].exc_info is None and "\n" not in errors[0].getMessage()


def test_the_failure_log_line_masks_the_tokens_a_hook_quotes(
        make_browser: Callable[..., Browser], provider: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def leaky(claims: dict[str, Any], tokens: SignInTokens, environ: dict[str, Any]) -> None:
        seen.append(tokens.access_token)
        raise RuntimeError(f"API refused token {tokens.access_token} for\n{claims['sub']}")

    browser = make_browser(on_sign_in=leaky)
    with caplog.at_level(logging.ERROR, logger="sso_middleware"):
        assert failure_code(sign_in(browser, provider)) == "sign_in_hook_failed"
    line = caplog.records[-1].getMessage()
    assert seen[0] not in line and "***" in line and "RuntimeError" in line and "leaky" in line
    assert "\n" not in line  # the hook's line break is escaped, not a forged second log line


def test_sub_is_checked_before_anything_is_stored(make_browser: Callable[..., Browser],
                                                  provider: FakeProvider) -> None:
    """The attack: a hook (or its data) renaming the user would escape back-channel logout by sub."""
    browser = make_browser(on_sign_in=lambda c, t, e: {**c, "sub": "admin"})
    assert failure_code(sign_in(browser, provider)) == "sign_in_hook_failed"
    assert whoami(browser)["remote_user"] is None


# -- the failure page's codes ------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status", "shown"), [
    ("sign_in_denied:not_provisioned", 403, "sign_in_denied:not_provisioned"),
    ("sign_in_denied", 403, "sign_in_denied"),
    ("sign_in_hook_failed", 503, "sign_in_hook_failed"),
    ("sign_in_denied:<script>", 400, "unknown_error"),
    ("sign_in_denied:" + "x" * 65, 400, "unknown_error"),
    ("sign_in_denied:", 400, "unknown_error"),
])
def test_describe_shows_only_safe_reasons(code: str, status: int, shown: str) -> None:
    assert describe(code)[0] == status and describe(code)[2] == shown


@pytest.mark.parametrize("lang", ["en", "de"])
def test_a_crafted_denial_reason_in_a_link_is_not_shown(make_browser: Callable[..., Browser], lang: str) -> None:
    """Attack: content spoofing. Anyone can link to the failure page; a reason is up to 64 characters of
    ``[A-Za-z0-9_.-]``, enough for ``sign_in_denied:account_locked.call_support_at_evil-help.example``.

    Only a reason the middleware itself sent (its failure redirect) is shown; a typed one shows the bare
    ``sign_in_denied`` code, as any other code outside the catalogue shows ``unknown_error``.
    """
    spoof = "sign_in_denied:account_locked.call_support_at_evil-help.example"
    browser = make_browser()
    headers = {"Accept-Language": lang}
    for forged in ({"error": spoof}, {"error": spoof, "sig": "A" * 22}, {"error": spoof, "sig": ""}):
        page = browser.get("/auth/failure", forged, headers=headers, status=403)
        assert "evil-help" not in page.text and "sign_in_denied" in page.text


def test_a_signed_denial_link_shows_only_its_own_reason(make_browser: Callable[..., Browser],
                                                        provider: FakeProvider) -> None:
    """The middleware's own link shows its reason; its signature does not fit another reason."""
    provider.users["alice"]["email"] = "alice@elsewhere.example"
    browser = make_browser(on_sign_in=provision)
    location = sign_in(browser, provider).location
    genuine = query(location)
    assert genuine["error"] == "sign_in_denied:not_provisioned"
    assert "sign_in_denied:not_provisioned" in browser.get(location, status=403).text
    other = browser.get("/auth/failure", {**genuine, "error": "sign_in_denied:evil-help.example"}, status=403)
    assert "evil-help" not in other.text

@pytest.mark.parametrize("reason", ["", "a b", "x" * 65, "é", "<b>", 7])
def test_sign_in_denied_refuses_a_reason_outside_the_charset(reason: Any) -> None:
    with pytest.raises(ValueError, match="1-64"):
        SignInDenied(reason)


# -- settings ------------------------------------------------------------------------------------


def test_a_module_function_string_is_resolved_at_build(settings: dict[str, Any]) -> None:
    strings = {key: str(value) for key, value in settings.items()}
    config = SSOConfig.from_settings({**strings, "on_sign_in": "tests.wsgi.test_sign_in_hook:provision"})
    assert config.on_sign_in is provision
    env = {f"SSO_{key.upper()}": value for key, value in strings.items()}
    from_env = SSOConfig.from_env({**env, "SSO_ON_SIGN_IN": "tests.wsgi.test_sign_in_hook:provision"})
    assert from_env.on_sign_in is provision


@pytest.mark.parametrize(("value", "problem"), [
    ("tests.wsgi.test_sign_in_hook:missing", "cannot import"),
    ("no_such_module_here:hook", "cannot import"),
    ("tests.wsgi.test_sign_in_hook:not_callable", "not callable"),
    ("just text", "module:function"),
    (42, "module:function"),
])
def test_a_bad_hook_setting_fails_the_build_naming_it(settings: dict[str, Any], value: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        SSOConfig(**settings, on_sign_in=value)
    assert caught.value.setting == "on_sign_in"


# -- userinfo_claims -------------------------------------------------------------------------------


def test_userinfo_claims_keeps_only_the_listed_claims_and_sub(
        make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(userinfo_claims="email", on_sign_in=provision)
    sign_in(browser, provider)
    assert whoami(browser)["userinfo"] == {"sub": "alice", "email": "alice@example.com"}


def test_userinfo_claims_makes_a_cookie_session_smaller(make_browser: Callable[..., Browser],
                                                        provider: FakeProvider) -> None:
    """Claims from userinfo (the ID token itself is kept whole, for the logout's id_token_hint)."""
    letters = random.Random(17)
    groups = ["".join(letters.choices("abcdefghijklmnopqrstuvwxyz", k=30)) for _ in range(60)]
    provider.userinfo = {"sub": "alice", "email": "alice@example.com", "groups": groups}
    sizes = {}
    for kept in ("", "email"):
        browser = make_browser(session_type="cookie", userinfo_claims=kept)
        sign_in(browser, provider)
        assert whoami(browser)["userinfo"]["email"] == "alice@example.com"
        sizes[kept] = max(len(cookie.value or "") for cookie in browser.cookiejar)
    assert sizes["email"] < sizes[""] - 1000


def test_userinfo_claims_is_stored_filtered(make_middleware: Callable[..., SSOMiddleware],
                                            provider: FakeProvider) -> None:
    middleware = make_middleware(userinfo_claims=["name"])
    sign_in(browser_for(middleware), provider)
    [record] = stored_sessions(middleware.config.data_dir)
    assert record["user"]["claims"] == {"sub": "alice", "name": "Alice Example"}


@pytest.mark.parametrize(("extra", "problem"), [
    ({"remote_user_claim": "email"}, "remote_user_claim"),
    ({"access_rules": "/admin claim roles includes admin"}, "'roles'"),
    ({"bearer_paths": ["/api"], "bearer_audience": "https://api.example",
      "bearer_rules": "/api claim permissions includes read"}, "'permissions'"),
    ({"userinfo_claims": "name bad\x00claim"}, "not a claim name"),
])
def test_userinfo_claims_must_keep_what_other_settings_read(settings: dict[str, Any], extra: dict[str, Any],
                                                            problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        SSOConfig(**{"userinfo_claims": "name", **settings, **extra})
    assert caught.value.setting == "userinfo_claims"


def test_userinfo_claims_listing_the_rule_claims_builds(settings: dict[str, Any]) -> None:
    config = SSOConfig(**settings, userinfo_claims="roles email", remote_user_claim="email",
                       access_rules="/admin claim roles includes admin; /billing max_age 300")
    assert config.userinfo_claims == ("roles", "email")


def test_the_hooks_claims_survive_a_token_refresh_without_running_it_again(
        make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    from sso_middleware.testing import Clock

    clock = Clock()
    provider.clock, provider.expires_in, provider.refresh_id_token = clock, 120, True
    hook = Recorder(provision)
    browser = make_browser(on_sign_in=hook, userinfo_claims="app_user_id", keep_access_token=True, scope=SCOPE,
                           clock=clock)
    sign_in(browser, provider)
    clock.advance(100)  # the access token is due: refreshed (with a new ID token) on the next request
    assert whoami(browser)["userinfo"] == {"sub": "alice", "app_user_id": 7}
    assert provider.refreshes == 1 and len(hook.calls) == 1
