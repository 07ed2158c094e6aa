"""The sign-in hook's rules alone (:mod:`sso_middleware._policy.sign_in_hook`): outcomes, claims, the allow-list."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sso_middleware import SignInDenied, SignInTokens
from sso_middleware._policy.rules import AccessRule, Condition
from sso_middleware._policy.sign_in_hook import MAX_CLAIMS_BYTES, check_userinfo_claims, kept_claims, run
from sso_middleware.errors import ConfigError, SignInHookFailed, describe

ACCESS = "at-unit-access-token-value-0001"
ID_TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.sig-unit"


def tokens(**claims: Any) -> SignInTokens:
    return SignInTokens.issued({"sub": "alice", "sid": "s1", "amr": ["pwd"], **claims}, 1000.0,
                               "openid email", "rt-unit", ACCESS, ID_TOKEN)


CLAIMS = {"sub": "alice", "email": "alice@example.com", "groups": ["a", "b"]}


def test_no_hook_keeps_the_claims() -> None:
    assert run(None, dict(CLAIMS), tokens(), {}) == CLAIMS


def test_the_hook_gets_a_copy_it_cannot_use_to_change_the_callers_claims() -> None:
    claims = {"sub": "alice", "groups": ["a"]}

    def hook(given: dict[str, Any], t: SignInTokens, environ: dict[str, Any]) -> dict[str, Any]:
        given["groups"].append("admin")
        return {"sub": "alice"}

    assert run(hook, claims, tokens(), {}) == {"sub": "alice"}
    assert claims == {"sub": "alice", "groups": ["a"]}


def test_sign_in_tokens_are_read_only_and_hide_the_raw_tokens() -> None:
    issued = tokens()
    with pytest.raises(TypeError):
        issued.id_token_claims["sub"] = "bob"  # type: ignore[index]
    with pytest.raises(AttributeError):
        issued.scope = "admin"  # type: ignore[misc]
    assert issued.has_refresh_token and issued.scopes == {"openid", "email"}
    assert ACCESS not in repr(issued) and ID_TOKEN not in repr(issued) and "rt-unit" not in repr(issued)
    assert not hasattr(issued, "refresh_token")


def test_a_denial_passes_through_with_its_reason() -> None:
    def hook(claims: dict[str, Any], t: SignInTokens, environ: dict[str, Any]) -> None:
        raise SignInDenied("not_provisioned", "no row")

    with pytest.raises(SignInDenied) as caught:
        run(hook, dict(CLAIMS), tokens(), {})
    assert caught.value.code == "sign_in_denied:not_provisioned" and caught.value.status == 403
    assert caught.value.detail == "sub='alice': no row"


def test_a_denials_detail_is_made_fit_for_a_log_line() -> None:
    def hook(claims: dict[str, Any], t: SignInTokens, environ: dict[str, Any]) -> None:
        raise SignInDenied("locked", f"token {t.access_token}\nFAKE LOG LINE")

    with pytest.raises(SignInDenied) as caught:
        run(hook, dict(CLAIMS), tokens(), {})
    assert ACCESS not in str(caught.value) and "\n" not in str(caught.value) and "***" in str(caught.value)
    assert describe(caught.value.code)[:1] == (403,)


def test_the_log_line_names_the_place_and_masks_the_tokens(caplog: pytest.LogCaptureFixture) -> None:
    def hook(claims: dict[str, Any], t: SignInTokens, environ: dict[str, Any]) -> None:
        raise KeyError(f"{t.access_token}|{t.id_token}\x1b[2J")

    with caplog.at_level(logging.ERROR, logger="sso_middleware"), pytest.raises(SignInHookFailed):
        run(hook, dict(CLAIMS), tokens(), {})
    [record] = caplog.records
    line = record.getMessage()
    assert ACCESS not in line and ID_TOKEN not in line and "\x1b" not in line
    assert "KeyError" in line and "test_sign_in_hook.py:" in line and "in hook" in line
    assert record.exc_info is None


@pytest.mark.parametrize(("returned", "problem"), [
    ({"email": "x"}, "no 'sub'"),
    ({"sub": "bob"}, "another 'sub'"),
    ({"sub": 1}, "another 'sub'"),
    ("alice", "not a mapping"),
    ({"sub": "alice", "x": {1, 2}}, "not JSON"),
    ({"sub": "alice", "x": float("inf")}, "not JSON"),
    ({"sub": "alice", "x": "y" * MAX_CLAIMS_BYTES}, "more than"),
])
def test_refused_claims_name_the_problem(returned: Any, problem: str) -> None:
    with pytest.raises(SignInHookFailed, match=problem):
        run(lambda c, t, e: returned, dict(CLAIMS), tokens(), {})


LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
NESTED = LEAF | st.lists(LEAF, max_size=3) | st.dictionaries(st.text(max_size=5), LEAF, max_size=3)
JSON = NESTED | st.lists(NESTED, max_size=3) | st.dictionaries(st.text(max_size=5), NESTED, max_size=3)
ANYTHING = st.one_of(JSON, st.dictionaries(st.text(max_size=5) | st.integers(), JSON | st.just(object()), max_size=4),
                     st.builds(lambda extra, sub: {**extra, "sub": sub},
                               st.dictionaries(st.text(max_size=5), JSON, max_size=4),
                               st.sampled_from(["alice", "bob", "", None, 0])))


@settings(max_examples=300, deadline=None)
@given(returned=ANYTHING, raises=st.sampled_from([None, ValueError, SignInDenied, RuntimeError]))
def test_fuzzed_hook_outcomes_are_kept_claims_a_denial_or_a_hook_failure(returned: Any, raises: Any) -> None:
    """Whatever a hook returns or raises: claims with its sub, SignInDenied or SignInHookFailed -- nothing else."""
    def hook(claims: dict[str, Any], t: SignInTokens, environ: dict[str, Any]) -> Any:
        if raises is SignInDenied:
            raise SignInDenied("fuzzed")
        if raises is not None:
            raise raises("boom")
        return returned

    try:
        kept = run(hook, dict(CLAIMS), tokens(), {})
    except SignInDenied as denied:
        assert raises is SignInDenied and denied.code == "sign_in_denied:fuzzed"
    except SignInHookFailed:
        assert raises not in (None, SignInDenied) or not acceptable(returned)
    else:
        assert raises is None and acceptable(returned) and kept["sub"] == "alice"
        assert kept == (CLAIMS if returned is None else returned)


def acceptable(value: Any) -> bool:
    """The rule, stated again on its own: None, or a JSON object of string names with the same sub."""
    if value is None:
        return True
    if not isinstance(value, dict) or value.get("sub", object()) != "alice" or not all(isinstance(k, str)
                                                                                      for k in value):
        return False
    try:
        return len(json.dumps(value, allow_nan=False)) <= MAX_CLAIMS_BYTES
    except (TypeError, ValueError):
        return False


# -- userinfo_claims ---------------------------------------------------------------


def test_kept_claims_keeps_the_listed_and_sub() -> None:
    assert kept_claims(CLAIMS, ()) == CLAIMS
    assert kept_claims(CLAIMS, ("email",)) == {"sub": "alice", "email": "alice@example.com"}
    assert kept_claims(CLAIMS, ("missing",)) == {"sub": "alice"}


def test_the_allow_list_must_keep_what_rules_and_remote_user_read() -> None:
    rule = AccessRule(path="/admin", conditions=(Condition(claim="roles", op="includes", values=("admin",)),))
    scope_rule = AccessRule(path="/api", conditions=(Condition(claim="scope", op="granted", values=("read",)),))
    check_userinfo_claims(("roles",), "sub", (rule, scope_rule))  # a granted scope is no session claim
    check_userinfo_claims((), "email", (rule,))  # no allow-list: nothing to check
    with pytest.raises(ConfigError, match="'roles'"):
        check_userinfo_claims(("email",), "sub", (rule,))
    with pytest.raises(ConfigError, match="remote_user_claim"):
        check_userinfo_claims(("roles",), "email", ())
