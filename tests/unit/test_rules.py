"""rules: Condition.holds, StepUp, applies_to, overlaps, normalized_path, matching, step_up_for, decide, prefixes.

Parsing (text, iterables, errors, the round trip) is tested in test_rule_parsing.py."""

from __future__ import annotations

import math
import posixpath
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sso_middleware._policy.rule_parsing import parse_rules
from sso_middleware._policy.rules import (
    GRANTED,
    AccessRule,
    Condition,
    Decision,
    StepUp,
    configured_prefix,
    decide,
    matching,
    normalized_path,
    step_up_for,
)

ROLES = "https://example.com/roles"
MFA = "urn:dev:loa:mfa"
PAPE_MFA = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
SECRET = "s3cr3t-Value-9f8e7d6c"

def includes(claim: str, *values: str) -> Condition:
    return Condition(claim, "includes", values)


def equals(claim: str, value: str) -> Condition:
    return Condition(claim, "equals", (value,))


def present(claim: str) -> Condition:
    return Condition(claim, "present")


def decide_at(
    rules: Any,
    path: str,
    claims: Optional[dict[str, Any]] = None,
    auth_time: Optional[float] = 1000.0,
    acr: Optional[str] = None,
    now: float = 1000.0,
    leeway: float = 0.0,
) -> Decision:
    return decide(
        rules if isinstance(rules, tuple) else parse_rules(rules), path, claims or {}, auth_time, acr, now, leeway
    )


# --------------------------------------------------------------------------- Condition.holds


@pytest.mark.parametrize(
    ("value", "expected", "holds"),
    [
        pytest.param("admin", "admin", True, id="str"),
        pytest.param("Admin", "admin", False, id="str-case-sensitive"),
        pytest.param("admin ", "admin", False, id="str-not-stripped"),
        pytest.param("", "admin", False, id="empty-str"),
        pytest.param(True, "true", True, id="bool-true"),
        pytest.param(False, "false", True, id="bool-false"),
        pytest.param(True, "True", False, id="bool-python-spelling"),
        pytest.param(True, "1", False, id="bool-is-not-int"),
        pytest.param(1, "1", True, id="int"),
        pytest.param(1, "true", False, id="int-is-not-bool"),
        pytest.param(-7, "-7", True, id="int-negative"),
        pytest.param(10**30, "1" + "0" * 30, True, id="int-big"),
        pytest.param(10**5000, "1" + "0" * 5000, False, id="int-too-many-digits-for-str"),
        pytest.param(3.0, "3", True, id="float-integral"),
        pytest.param(3.0, "3.0", False, id="float-integral-not-repr"),
        pytest.param(-0.0, "0", True, id="float-negative-zero"),
        pytest.param(2.5, "2.5", True, id="float"),
        pytest.param(0.1, "0.1", True, id="float-repr"),
        pytest.param(1e22, "10000000000000000000000", True, id="float-large-integral"),
        pytest.param(math.inf, "inf", False, id="float-inf"),
        pytest.param(math.nan, "nan", False, id="float-nan"),
        pytest.param(None, "None", False, id="none"),
        pytest.param(None, "null", False, id="none-json"),
        pytest.param(["admin"], "admin", False, id="list"),
        pytest.param({"admin": True}, "admin", False, id="dict"),
        pytest.param(b"admin", "admin", False, id="bytes"),
    ],
)
def test_equals(value: Any, expected: str, holds: bool) -> None:
    assert equals("c", expected).holds({"c": value}) is holds


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        pytest.param(["user", "admin"], True, id="list-any"),
        pytest.param(("owner",), True, id="tuple"),
        pytest.param(["user"], False, id="list-none"),
        pytest.param([], False, id="list-empty"),
        pytest.param(["Admin"], False, id="list-case-sensitive"),
        pytest.param([["admin"]], False, id="nested-list-ignored"),
        pytest.param([{"admin": 1}], False, id="nested-dict-ignored"),
        pytest.param([None, ["admin"], "owner"], True, id="nested-skipped-then-match"),
        pytest.param([7], True, id="list-int-as-text"),
        pytest.param([7.0], True, id="list-float-integral"),
        pytest.param([True], True, id="list-bool-as-text"),
        pytest.param("admin", True, id="str-single"),
        pytest.param("read admin write", True, id="str-space-separated"),
        pytest.param("read  admin ", True, id="str-repeated-spaces"),
        pytest.param("read\tadmin\n", False, id="str-tab-newline-are-no-separators"),
        pytest.param("read\u00a0admin", False, id="str-unicode-space-is-no-separator"),
        pytest.param("read write", False, id="str-no-token"),
        pytest.param("administrator", False, id="str-no-substring"),
        pytest.param("read,admin", False, id="str-not-comma-split"),
        pytest.param("", False, id="str-empty"),
        pytest.param(7, False, id="int-is-not-a-list"),
        pytest.param(True, False, id="bool"),
        pytest.param({"admin": True}, False, id="dict-keys-not-used"),
        pytest.param(None, False, id="none"),
    ],
)
def test_includes(value: Any, holds: bool) -> None:
    condition = includes("roles", "admin", "owner", "7", "true")
    assert condition.holds({"roles": value}) is holds


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        pytest.param("x", True, id="str"),
        pytest.param(" ", True, id="blank-str"),
        pytest.param("", False, id="empty-str"),
        pytest.param(None, False, id="none"),
        pytest.param([], False, id="empty-list"),
        pytest.param((), False, id="empty-tuple"),
        pytest.param({}, False, id="empty-dict"),
        pytest.param([None], True, id="list-of-none"),
        pytest.param({"a": None}, True, id="dict"),
        pytest.param(False, True, id="false"),
        pytest.param(0, True, id="zero"),
        pytest.param(0.0, True, id="zero-float"),
    ],
)
def test_present(value: Any, holds: bool) -> None:
    assert present("org_id").holds({"org_id": value}) is holds


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param(equals("c", "v"), id="equals"),
        pytest.param(includes("c", "v"), id="includes"),
        pytest.param(present("c"), id="present"),
    ],
)
def test_missing_claim_never_holds(condition: Condition) -> None:
    assert not condition.holds({})
    assert not condition.holds({"C": "v", "other": "v", "c ": "v"})


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param(Condition("c", "inclides", ("v",)), id="unknown-op"),
        pytest.param(Condition("c", "equals"), id="equals-no-value"),
        pytest.param(Condition("c", "equals", ("v", "w")), id="equals-two-values"),
        pytest.param(Condition("c", "includes"), id="includes-no-value"),
    ],
)
def test_malformed_condition_fails_closed(condition: Condition) -> None:
    assert not condition.holds({"c": "v"})
    assert not condition.holds({"c": ["v", "w"]})


# --------------------------------------------------------------------------- StepUp


@pytest.mark.parametrize(
    ("step_up", "auth_time", "acr", "now", "leeway", "satisfied"),
    [
        pytest.param(StepUp(), None, None, 0, 0, True, id="empty"),
        pytest.param(StepUp(max_age=300), 700, None, 1000, 0, True, id="age-exactly-max"),
        pytest.param(StepUp(max_age=300), 699.9, None, 1000, 0, False, id="age-just-over"),
        pytest.param(StepUp(max_age=300), 690, None, 1000, 10, True, id="leeway-exact-edge"),
        pytest.param(StepUp(max_age=300), 689.9, None, 1000, 10, False, id="leeway-just-over"),
        pytest.param(StepUp(max_age=0), 1000, None, 1000, 0, True, id="zero-now"),
        pytest.param(StepUp(max_age=0), 999, None, 1000, 0, False, id="zero-one-second"),
        pytest.param(StepUp(max_age=0), 995, None, 1000, 5, True, id="zero-within-leeway"),
        pytest.param(StepUp(max_age=300), 1100, None, 1000, 0, True, id="auth-time-in-future"),
        pytest.param(StepUp(max_age=300), None, None, 1000, 60, False, id="unknown-auth-time"),
        pytest.param(StepUp(max_age=300), math.nan, None, 1000, 60, False, id="nan-auth-time"),
        pytest.param(StepUp(max_age=300), math.inf, None, 1000, 60, False, id="inf-auth-time"),
        pytest.param(StepUp(max_age=300), -math.inf, None, 1000, 60, False, id="minus-inf-auth-time"),
        pytest.param(StepUp(acr_values=(MFA,)), None, MFA, 1000, 0, True, id="acr-match"),
        pytest.param(StepUp(acr_values=(MFA, PAPE_MFA)), None, PAPE_MFA, 1000, 0, True, id="acr-any-of"),
        pytest.param(StepUp(acr_values=(MFA,)), None, "urn:dev:loa:pwd", 1000, 0, False, id="acr-other"),
        pytest.param(StepUp(acr_values=(MFA,)), None, None, 1000, 0, False, id="acr-missing"),
        pytest.param(StepUp(acr_values=(MFA,)), None, "", 1000, 0, False, id="acr-empty"),
        pytest.param(StepUp(acr_values=(MFA,)), None, MFA.upper(), 1000, 0, False, id="acr-case-sensitive"),
        pytest.param(StepUp(300, (MFA,)), 900, MFA, 1000, 0, True, id="both-hold"),
        pytest.param(StepUp(300, (MFA,)), 600, MFA, 1000, 0, False, id="both-too-old"),
        pytest.param(StepUp(300, (MFA,)), 900, "pwd", 1000, 0, False, id="both-too-weak"),
        pytest.param(StepUp(300), 900, "anything", 1000, 0, True, id="acr-ignored-without-acr-values"),
    ],
)
def test_step_up_satisfied_by(
    step_up: StepUp, auth_time: Optional[float], acr: Optional[str], now: float, leeway: float, satisfied: bool
) -> None:
    assert step_up.satisfied_by(auth_time, acr, now, leeway) is satisfied


@given(
    max_age=st.integers(min_value=0, max_value=10**6),
    auth_time=st.floats(min_value=0, max_value=2e9),
    now=st.floats(min_value=0, max_value=2e9),
    leeway=st.floats(min_value=0, max_value=600),
    older=st.floats(min_value=0, max_value=1e6),
)
def test_step_up_an_older_authentication_never_does_better(
    max_age: int, auth_time: float, now: float, leeway: float, older: float
) -> None:
    step_up = StepUp(max_age=max_age)
    if step_up.satisfied_by(auth_time - older, None, now, leeway):
        assert step_up.satisfied_by(auth_time, None, now, leeway)


# --------------------------------------------------------------------------- applies_to, normalized_path


@pytest.mark.parametrize(
    ("prefix", "path", "applies"),
    [
        pytest.param("/admin", "/admin", True, id="exact"),
        pytest.param("/admin", "/admin/", True, id="trailing-slash-unnormalized"),
        pytest.param("/admin", "/admin/users/1", True, id="below"),
        pytest.param("/admin", "/administrator", False, id="longer-name"),
        pytest.param("/admin", "/admin-tools", False, id="dash"),
        pytest.param("/admin", "/admin.json", False, id="extension"),
        pytest.param("/admin", "/adm", False, id="shorter"),
        pytest.param("/admin", "/", False, id="root"),
        pytest.param("/admin", "/Admin", False, id="case"),
        pytest.param("/admin", "/public/admin", False, id="not-at-start"),
        pytest.param("/a/b", "/a", False, id="parent"),
        pytest.param("/a/b", "/a/b/c", True, id="nested"),
        pytest.param("/a/b", "/a/bc", False, id="nested-longer-name"),
        pytest.param("/", "/", True, id="root-root"),
        pytest.param("/", "/anything/at/all", True, id="root-everything"),
        pytest.param("/", "", True, id="root-empty"),
    ],
)
def test_applies_to(prefix: str, path: str, applies: bool) -> None:
    assert AccessRule(prefix, max_age=1).applies_to(path) is applies


@pytest.mark.parametrize(
    ("one", "other", "overlap"),
    [
        pytest.param("/app", "/app", True, id="same"),
        pytest.param("/app", "/app/forms", True, id="other-below"),
        pytest.param("/app/forms", "/app", True, id="other-above"),
        pytest.param("/", "/api", True, id="root"),
        pytest.param("/app", "/application", False, id="longer-name"),
        pytest.param("/app/forms", "/app/api", False, id="siblings"),
    ],
)
def test_overlaps_either_way(one: str, other: str, overlap: bool) -> None:
    assert AccessRule(path=one).overlaps(AccessRule(path=other)) is overlap
    assert AccessRule(path=other).overlaps(AccessRule(path=one)) is overlap


@pytest.mark.parametrize(
    ("path", "normalized"),
    [
        pytest.param("", "/", id="empty"),
        pytest.param("/", "/", id="root"),
        pytest.param("//", "/", id="double-root"),
        pytest.param("///", "/", id="triple-root"),
        pytest.param("/admin", "/admin", id="plain"),
        pytest.param("//admin", "/admin", id="double-leading"),
        pytest.param("///admin", "/admin", id="triple-leading"),
        pytest.param("/admin//users", "/admin/users", id="double-inside"),
        pytest.param("/admin/", "/admin", id="trailing"),
        pytest.param("/./admin", "/admin", id="dot"),
        pytest.param("/admin/.", "/admin", id="trailing-dot"),
        pytest.param("/a/../admin", "/admin", id="dotdot"),
        pytest.param("/../admin", "/admin", id="dotdot-above-root"),
        pytest.param("/..", "/", id="only-dotdot"),
        pytest.param("//..//admin/./x/..", "/admin", id="mixed"),
        pytest.param("/admin/...", "/admin/...", id="three-dots-is-a-name"),
        pytest.param("/admin/.x", "/admin/.x", id="dotfile"),
        pytest.param("admin/x", "/admin/x", id="relative-made-absolute"),
        pytest.param("/ad%2Fmin", "/ad%2Fmin", id="encoded-untouched"),
    ],
)
def test_normalized_path(path: str, normalized: str) -> None:
    assert normalized_path(path) == normalized


_SEGMENT = st.sampled_from(["", ".", "..", "a", "b", "admin", "x.y", "..."])


@given(st.lists(_SEGMENT, max_size=8), st.booleans())
def test_normalized_path_properties(segments: list[str], leading: bool) -> None:
    path = ("/" if leading else "") + "/".join(segments)
    result = normalized_path(path)
    assert result.startswith("/")
    assert not result.startswith("//")
    assert "//" not in result
    assert result == "/" or not result.endswith("/")
    assert not {".", ".."} & set(result.split("/"))
    assert normalized_path(result) == result
    # what a router resolving the segments one by one would see
    stack: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if stack:
                stack.pop()
        elif segment not in ("", "."):
            stack.append(segment)
    assert result == "/" + "/".join(stack)
    assert result == posixpath.normpath("/" + "/".join(stack))


_NAME = st.sampled_from(["a", "b", "ab", "admin", "x"])


@given(st.lists(_NAME, min_size=1, max_size=4), st.lists(_NAME, max_size=5))
def test_applies_to_is_segment_prefix(rule_segments: list[str], path_segments: list[str]) -> None:
    rule = AccessRule("/" + "/".join(rule_segments), max_age=1)
    path = "/" + "/".join(path_segments)
    assert rule.applies_to(path) is (path_segments[: len(rule_segments)] == rule_segments)
    assert AccessRule("/", max_age=1).applies_to(path)


# --------------------------------------------------------------------------- matching, step_up_for


NESTED = """
/          max_age 3600
/a         acr_values m1,m2,m3
/a/b       max_age 60
/a/b       acr_values m3,m2
/a/b/c     claim c present
/ab        max_age 10
"""


@pytest.mark.parametrize(
    ("path", "paths"),
    [
        pytest.param("/a/b/c/d", ["/a/b/c", "/a/b", "/a", "/"], id="deep"),
        pytest.param("//a/./b/", ["/a/b", "/a", "/"], id="normalized"),
        pytest.param("/ab", ["/ab", "/"], id="sibling-name"),
        pytest.param("/abc", ["/"], id="root-only"),
        pytest.param("", ["/"], id="empty"),
    ],
)
def test_matching_longest_first(path: str, paths: list[str]) -> None:
    rules = parse_rules(NESTED)
    assert [rule.path for rule in matching(rules, path)] == paths
    assert [rule.path for rule in matching(tuple(reversed(rules)), path)] == paths


def test_matching_nothing() -> None:
    assert matching(parse_rules("/a max_age 1"), "/b") == []
    assert matching((), "/a") == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/a/b/c", StepUp(60, ("m3", "m2")), id="most-specific-acr-order"),
        pytest.param("/a", StepUp(3600, ("m1", "m2", "m3")), id="outer"),
        pytest.param("/ab", StepUp(10), id="smallest-max-age"),
        pytest.param("/x", StepUp(3600), id="root"),
    ],
)
def test_step_up_for(path: str, expected: StepUp) -> None:
    rules = parse_rules(NESTED)
    assert step_up_for(matching(rules, path)) == expected
    assert step_up_for(list(reversed(matching(rules, path)))) == expected


def test_step_up_for_acr_order_follows_most_specific_rule() -> None:
    rules = (AccessRule("/a", acr_values=("x", "y", "z")), AccessRule("/a/b", acr_values=("z", "w", "x")))
    assert step_up_for(rules) == StepUp(acr_values=("z", "x"))


def test_step_up_for_none() -> None:
    assert step_up_for(()) is None
    assert step_up_for(parse_rules("/a claim c present")) is None


def test_step_up_for_conflicting_hand_built_rules() -> None:
    rules = (AccessRule("/a", acr_values=("x",)), AccessRule("/a/b", acr_values=("y",)))
    with pytest.raises(ValueError, match="no value in common"):
        step_up_for(rules)


# --------------------------------------------------------------------------- decide


ADMIN = f"""
/admin          claim {ROLES} includes admin,owner
/admin          claim email_verified equals true
/admin/billing  max_age 300
/admin/vault    acr_values {MFA},{PAPE_MFA}
/admin/vault    max_age 600
"""
GOOD = {ROLES: ["admin"], "email_verified": True}


def test_decide_no_rules_allows() -> None:
    assert decide((), "/admin", {}, None, None, 0.0, 0.0) == Decision(True)


def test_decide_no_matching_rule_allows() -> None:
    assert decide_at(ADMIN, "/administrator", {}, auth_time=None) == Decision(True)
    assert decide_at(ADMIN, "/", {}, auth_time=None) == Decision(True)


@pytest.mark.parametrize(
    "path",
    ["/admin", "/admin/", "//admin", "/./admin/x", "/public/../admin", "admin", "/admin/billing/../users"],
)
def test_decide_normalizes_the_path(path: str) -> None:
    decision = decide_at(ADMIN, path, {ROLES: ["user"], "email_verified": True})
    assert not decision.allowed
    assert decision.step_up is None


@pytest.mark.parametrize(
    ("claims", "failing"),
    [
        pytest.param({}, f"claim {ROLES!r} includes not satisfied (claim missing)", id="no-claims"),
        pytest.param({ROLES: ["user"], "email_verified": True}, f"claim {ROLES!r} includes not satisfied", id="role"),
        pytest.param({ROLES: "admin", "email_verified": "false"}, "claim 'email_verified' equals", id="second-cond"),
        pytest.param({ROLES: "admin"}, "'email_verified' equals not satisfied (claim missing)", id="second-missing"),
    ],
)
def test_decide_forbidden(claims: dict[str, Any], failing: str) -> None:
    decision = decide_at(ADMIN, "/admin/users", claims)
    assert decision == Decision(False, None, decision.reason)
    assert decision.reason.startswith("rule '/admin': ")
    assert failing in decision.reason


def test_decide_forbidden_comes_before_step_up() -> None:
    # too old, too weak and the wrong role: step-up would not help, so no step-up is offered
    decision = decide_at(ADMIN, "/admin/vault", {ROLES: ["user"]}, auth_time=None, acr=None, now=10**9)
    assert not decision.allowed
    assert decision.step_up is None
    assert "rule '/admin'" in decision.reason


def test_decide_allowed() -> None:
    assert decide_at(ADMIN, "/admin/users", GOOD, auth_time=None) == Decision(True)
    assert decide_at(ADMIN, "/admin/billing", GOOD, auth_time=900, now=1000) == Decision(True)
    assert decide_at(ADMIN, "/admin/vault/x", GOOD, auth_time=900, acr=PAPE_MFA, now=1000) == Decision(True)


@pytest.mark.parametrize(
    ("auth_time", "now", "leeway", "allowed"),
    [
        pytest.param(700.0, 1000.0, 0.0, True, id="exactly-max-age"),
        pytest.param(699.0, 1000.0, 0.0, False, id="one-second-over"),
        pytest.param(690.0, 1000.0, 10.0, True, id="leeway-edge"),
        pytest.param(689.5, 1000.0, 10.0, False, id="beyond-leeway"),
        pytest.param(None, 1000.0, 10**6, False, id="unknown-auth-time"),
    ],
)
def test_decide_max_age(auth_time: Optional[float], now: float, leeway: float, allowed: bool) -> None:
    decision = decide_at(ADMIN, "/admin/billing/invoices", GOOD, auth_time=auth_time, now=now, leeway=leeway)
    if allowed:
        assert decision == Decision(True)
    else:
        assert decision.allowed is False
        assert decision.step_up == StepUp(max_age=300)
        assert "rule '/admin/billing'" in decision.reason
        assert "max_age 300" in decision.reason
        assert ("unknown" in decision.reason) is (auth_time is None)


@pytest.mark.parametrize(
    ("auth_time", "acr", "problems"),
    [
        pytest.param(900.0, None, ["no acr"], id="no-acr"),
        pytest.param(900.0, "urn:dev:loa:pwd", ["acr not one of the accepted values"], id="weak-acr"),
        pytest.param(100.0, MFA, ["older than max_age 600"], id="too-old"),
        pytest.param(None, "urn:dev:loa:pwd", ["unknown", "acr not one of"], id="both"),
    ],
)
def test_decide_step_up(auth_time: Optional[float], acr: Optional[str], problems: list[str]) -> None:
    decision = decide_at(ADMIN, "/admin/vault", GOOD, auth_time=auth_time, acr=acr, now=1000.0)
    assert decision.allowed is False
    assert decision.step_up == StepUp(max_age=600, acr_values=(MFA, PAPE_MFA))
    assert decision.reason.startswith("step-up needed: rule '/admin/vault'")
    for problem in problems:
        assert problem in decision.reason
    if acr is not None:
        assert acr not in decision.reason


def test_decide_nested_rules_are_anded() -> None:
    rules = parse_rules(
        """
        /               claim sub present
        /team           claim org equals acme
        /team/ops       claim groups includes ops
        /team/ops/prod  max_age 60
        /team/ops/prod  acr_values mfa,hwk
        /team/ops/stage acr_values hwk,mfa
        /team/ops/prod/keys acr_values hwk
        """
    )
    claims = {"sub": "u1", "org": "acme", "groups": ["dev", "ops"]}
    assert decide(rules, "/team/ops/x", claims, None, None, 0, 0).allowed
    for missing in claims:
        partial = {key: value for key, value in claims.items() if key != missing}
        decision = decide(rules, "/team/ops/x", partial, None, None, 0, 0)
        assert (decision.allowed, decision.step_up) == (False, None)
        assert repr(missing) in decision.reason
    decision = decide(rules, "/team/ops/prod/keys/1", claims, 0, "mfa", 100, 0)
    assert decision.step_up == StepUp(60, ("hwk",))
    assert decide(rules, "/team/ops/prod/keys/1", claims, 50, "hwk", 100, 0) == Decision(True)
    assert decide(rules, "/team/ops/prod", claims, 50, "mfa", 100, 0) == Decision(True)
    assert decide(rules, "/team/ops/stage", claims, None, "mfa", 100, 0) == Decision(True)


def test_decide_hand_built_conflicting_acr_is_forbidden_not_open() -> None:
    rules = (AccessRule("/a", acr_values=("x",)), AccessRule("/a/b", acr_values=("y",)))
    decision = decide(rules, "/a/b", {}, 0, "x", 0, 0)
    assert (decision.allowed, decision.step_up) == (False, None)
    assert "no value in common" in decision.reason
    assert decide(rules, "/a", {}, 0, "x", 0, 0) == Decision(True)


def test_decide_reason_never_contains_claim_values() -> None:
    claims = {
        ROLES: [SECRET, f"x {SECRET}"],
        "email_verified": SECRET,
        "email": f"{SECRET}@example.com",
        "sub": SECRET,
    }
    for path in ("/admin", "/admin/vault", "/admin/billing"):
        decision = decide_at(ADMIN, path, claims, auth_time=None, acr=SECRET)
        assert not decision.allowed
        assert SECRET not in decision.reason
    good = {**GOOD, "sub": SECRET}
    decision = decide_at(ADMIN, "/admin/vault", good, auth_time=None, acr=SECRET)
    assert decision.step_up is not None
    assert SECRET not in decision.reason


_SECRET = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=10, max_size=30)
_CLAIM_VALUE = st.one_of(
    _SECRET,
    st.just(True),
    st.lists(st.one_of(_SECRET, st.just("admin")), max_size=3),
    st.builds(lambda a, b: f"{a} {b}", _SECRET, st.sampled_from(["admin", "owner"])),
)


@given(
    claims=st.dictionaries(st.sampled_from([ROLES, "email_verified", "sub", "org_id"]), _CLAIM_VALUE),
    acr=st.one_of(_SECRET, st.just(MFA)),
    auth_time=st.one_of(st.none(), st.floats(min_value=0, max_value=1000)),
    path=st.sampled_from(["/admin", "/admin/vault", "/admin/billing/x"]),
)
def test_decide_reason_never_leaks_values(
    claims: dict[str, Any], acr: str, auth_time: Optional[float], path: str
) -> None:
    decision = decide(parse_rules(ADMIN), path, claims, auth_time, acr, 1000.0, 0.0)
    assert decision.allowed is (decision.reason == "")
    secrets = [acr] if acr != MFA else []
    for value in claims.values():
        if isinstance(value, str):
            secrets.append(value.split()[0])
        elif isinstance(value, list):
            secrets.extend(item for item in value if item != "admin")
    for secret in secrets:
        assert secret not in decision.reason


def test_decide_allowed_decision_has_no_reason() -> None:
    assert decide_at(ADMIN, "/admin", GOOD) == Decision(True, None, "")


# -- issue 13 item 14: prefixes are compared in the form PATH_INFO has (PEP 3333) -------------------------


@pytest.mark.parametrize("configured", ["/caf%C3%A9", "/caf%c3%a9", "/café", "/caf%C3%a9/"])
def test_an_encoded_or_non_ascii_rule_path_matches_the_decoded_path_info(configured: str) -> None:
    (rule,) = parse_rules(f"{configured} claim roles present")
    assert rule.path == "/caf%C3%A9"
    assert rule.path_info == "/caf\xc3\xa9"  # the UTF-8 bytes as latin-1 text, as a server hands them over
    for path_info in ("/caf\xc3\xa9", "/caf\xc3\xa9/menu", "//caf\xc3\xa9/./menu", "/x/../caf\xc3\xa9"):
        assert matching((rule,), path_info) == [rule], path_info
    for path_info in ("/caf%C3%A9", "/café", "/caf\xc3\xa9s", "/cafe"):
        assert matching((rule,), path_info) == [], path_info


def test_checking_a_canonical_prefix_again_changes_nothing() -> None:
    """SSOConfig.replace() parses the parsed rules again: a decoded form must never be decoded twice."""
    once = parse_rules("/café claim roles present ; /100%25 max_age 5 ; /a%20b max_age 5")
    twice = parse_rules(once)
    assert twice == once
    assert [rule.path_info for rule in twice] == [rule.path_info for rule in once]
    assert configured_prefix(configured_prefix("/caf%c3%a9/x/")) == configured_prefix("/caf%c3%a9/x/")


@pytest.mark.parametrize(("configured", "path_info"), [
    pytest.param("/100%25", "/100%", id="percent"),
    pytest.param("/a%20b", "/a b", id="space"),
    pytest.param("/%E2%82%AC", "/\xe2\x82\xac", id="euro-sign-c1-bytes"),
    pytest.param("/€", "/\xe2\x82\xac", id="euro-sign-literal"),
    pytest.param("/a%2eb", "/a.b", id="encoded-dot-inside-a-segment"),
])
def test_decoded_prefixes_of_other_escapes(configured: str, path_info: str) -> None:
    (rule,) = parse_rules([{"path": configured, "max_age": 5}])
    assert rule.path_info == path_info
    assert matching((rule,), path_info + "/x") == [rule]


# -- scope requirements: the token's grant, never a claim ------------------------------


def test_a_scope_requirement_holds_only_for_granted_scopes() -> None:
    """``scope X`` (a GRANTED condition) reads the scopes passed apart, never a claim named ``scope``."""
    rules = parse_rules("/api/admin scope read:admin,write:admin", bearer=True)
    assert {condition.op for rule in rules for condition in rule.conditions} == {GRANTED}
    claims = {"sub": "alice", "scope": "read:admin write:admin"}
    refused = decide(rules, "/api/admin/x", claims, None, None, 0.0, 1.0)  # a session: nothing granted
    assert not refused.allowed and "not granted" in refused.reason
    assert not decide(rules, "/api/admin/x", {}, None, None, 0.0, 1.0, ("read:admin",)).allowed
    assert decide(rules, "/api/admin/x", {}, None, None, 0.0, 1.0, ("write:admin", "read:admin")).allowed
    # hand-built, it is checked and kept the same way; for access_rules it is refused
    hand_built = AccessRule("/api/admin", (Condition("scope", GRANTED, ("read:admin",)),))
    assert parse_rules([hand_built], bearer=True)[0].conditions == hand_built.conditions
    with pytest.raises(ValueError, match="bearer_rules"):
        parse_rules([hand_built])
    with pytest.raises(ValueError, match="bad scope list"):
        parse_rules([AccessRule("/api", (Condition("scope", GRANTED, ("a b",)),))], bearer=True)
