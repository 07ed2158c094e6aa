"""rule_parsing: the text syntax, mappings and hand-built rules, merging, every error, the text round trip."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sso_middleware._policy.rule_parsing import parse_rules
from sso_middleware._policy.rules import AccessRule, Condition, normalized_path

from .test_rules import MFA, PAPE_MFA, ROLES, equals, includes, present

EXAMPLE = f"""
/admin    claim {ROLES} includes admin,owner
/reports  claim email_verified equals true
/beta     claim org_id present
/billing  max_age 300
/vault    acr_values {MFA},{PAPE_MFA}
"""


# --------------------------------------------------------------------------- parsing: happy paths


def test_parse_the_documented_example() -> None:
    assert parse_rules(EXAMPLE) == (
        AccessRule("/billing", max_age=300),
        AccessRule("/reports", (equals("email_verified", "true"),)),
        AccessRule("/admin", (includes(ROLES, "admin", "owner"),)),
        AccessRule("/vault", acr_values=(MFA, PAPE_MFA)),
        AccessRule("/beta", (present("org_id"),)),
    )


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("/a claim c present;/b max_age 5", id="semicolon"),
        pytest.param(" /a claim c present ; /b max_age 5 ; ", id="semicolon-spaces-and-trailing"),
        pytest.param("/a claim c present\n/b max_age 5\n", id="newlines"),
        pytest.param("/a claim c present\r\n\r\n/b max_age 5\r\n", id="crlf-and-blank"),
        pytest.param("# access rules\n\n/a claim c present\n  # indented comment\n/b max_age 5", id="comments"),
        pytest.param("/a claim c present ; # a note; still the note\n/b max_age 5", id="comment-after-semicolon"),
        pytest.param("# /x max_age 1; /y max_age 2\n/a\tclaim  c\tpresent\n/b max_age 5", id="tabs-commented-line"),
        pytest.param(["/a claim c present", "/b max_age 5"], id="list-of-lines"),
        pytest.param(["/a claim c present; /b max_age 5"], id="list-item-with-semicolon"),
        pytest.param(("/a claim c present\n/b max_age 5",), id="tuple-item-with-newline"),
        pytest.param(iter(["/b max_age 5", "/a claim c present"]), id="iterator"),
        pytest.param(
            [{"path": "/a", "claim": "c", "present": True}, {"path": "/b", "max_age": 5}],
            id="mappings",
        ),
        pytest.param([AccessRule("/a", (present("c"),)), AccessRule("/b", max_age=5)], id="access-rules"),
        pytest.param([AccessRule("/a/", [present("c")]), "/b max_age 5"], id="mixed-normalized"),  # type: ignore[arg-type]
    ],
)
def test_parse_forms(source: Any) -> None:
    assert parse_rules(source) == (AccessRule("/a", (present("c"),)), AccessRule("/b", max_age=5))


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("", id="empty"),
        pytest.param("  \n\n # only a comment\n;;", id="blank"),
        pytest.param([], id="empty-list"),
        pytest.param(["", "# nothing"], id="blank-items"),
    ],
)
def test_parse_nothing(source: Any) -> None:
    assert parse_rules(source) == ()


def test_parse_merges_lines_of_one_path() -> None:
    rules = parse_rules(
        """
        /admin claim roles includes admin
        /admin/ claim email_verified equals true
        /admin max_age 600
        //admin max_age 300
        /x/../admin max_age 900
        /admin acr_values mfa
        /admin claim roles includes admin
        """
    )
    assert rules == (
        AccessRule(
            "/admin",
            (includes("roles", "admin"), equals("email_verified", "true")),
            max_age=300,
            acr_values=("mfa",),
        ),
    )


def test_parse_merges_across_forms() -> None:
    rules = parse_rules(
        [
            "/admin claim roles includes admin",
            {"path": "/admin", "claim": "org", "equals": "acme", "max_age": 60},
            AccessRule("/admin/", (present("email"),), max_age=120, acr_values=("mfa",)),
        ]
    )
    assert rules == (
        AccessRule(
            "/admin",
            (includes("roles", "admin"), equals("org", "acme"), present("email")),
            max_age=60,
            acr_values=("mfa",),
        ),
    )


@pytest.mark.parametrize(
    ("line", "condition"),
    [
        pytest.param("/x claim c includes a", includes("c", "a"), id="includes-one"),
        pytest.param("/x claim c includes b,a,b", includes("c", "b", "a"), id="includes-deduplicated-in-order"),
        pytest.param("/x claim c equals a,b", equals("c", "a,b"), id="equals-comma-is-literal"),
        pytest.param("/x claim c equals 0", equals("c", "0"), id="equals-zero"),
        pytest.param("/x claim a:b/c?d=e present", present("a:b/c?d=e"), id="url-like-claim-name"),
        pytest.param("/x claim c equals ÄÖ", equals("c", "ÄÖ"), id="non-ascii-value"),
    ],
)
def test_parse_conditions(line: str, condition: Condition) -> None:
    assert parse_rules(line) == (AccessRule("/x", (condition,)),)


@pytest.mark.parametrize(
    ("item", "condition"),
    [
        pytest.param({"claim": "c", "equals": "v"}, equals("c", "v"), id="equals-str"),
        pytest.param({"claim": "c", "equals": True}, equals("c", "true"), id="equals-bool"),
        pytest.param({"claim": "c", "equals": 42}, equals("c", "42"), id="equals-int"),
        pytest.param({"claim": "c", "equals": "a b"}, equals("c", "a b"), id="equals-with-space"),
        pytest.param({"claim": "c", "includes": ["a", "b"]}, includes("c", "a", "b"), id="includes-list"),
        pytest.param({"claim": "c", "includes": ("a", "a")}, includes("c", "a"), id="includes-tuple-dedup"),
        pytest.param({"claim": "c", "present": True}, present("c"), id="present"),
    ],
)
def test_parse_mapping_conditions(item: dict[str, Any], condition: Condition) -> None:
    assert parse_rules([{"path": "/x", **item}]) == (AccessRule("/x", (condition,)),)


def test_parse_mapping_step_up() -> None:
    assert parse_rules([{"path": "/x", "max_age": 0, "acr_values": ["a", "b", "a"]}]) == (
        AccessRule("/x", max_age=0, acr_values=("a", "b")),
    )


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        pytest.param("/", "/", id="root"),
        pytest.param("/admin/", "/admin", id="trailing-slash"),
        pytest.param("/admin///", "/admin", id="trailing-slashes"),
        pytest.param("//", "/", id="double-root"),
        pytest.param("//admin", "/admin", id="double-leading"),
        pytest.param("/a//b/./c/..", "/a/b", id="dots"),
        pytest.param("/a/b/c", "/a/b/c", id="deep"),
        # Canonical form (issue 13 item 14): escapes of unreserved characters decoded, the rest upper-case hex.
        pytest.param("/~user/%7E", "/~user/~", id="printable-ascii"),
        pytest.param("/caf%c3%a9", "/caf%C3%A9", id="lower-case-escape"),
        pytest.param("/café", "/caf%C3%A9", id="non-ascii-literal"),
        pytest.param("/100%25", "/100%25", id="encoded-percent"),
        pytest.param("/a%20b", "/a%20b", id="encoded-space"),
    ],
)
def test_parse_normalizes_paths(path: str, stored: str) -> None:
    assert parse_rules(f"{path} max_age 1")[0].path == stored


def test_parse_orders_longest_path_first_then_by_name() -> None:
    lines = ["/ max_age 9", "/b max_age 1", "/a max_age 1", "/a/b/c max_age 1", "/ab max_age 1", "/zz/y max_age 1"]
    expected = ["/a/b/c", "/zz/y", "/ab", "/a", "/b", "/"]
    for permutation in itertools.permutations(lines):
        assert [rule.path for rule in parse_rules(list(permutation))] == expected


def test_parse_returns_hashable_tuples() -> None:
    rules = parse_rules([AccessRule("/x", [includes("c", "a")], acr_values=["m"])])  # type: ignore[arg-type]
    assert isinstance(rules[0].conditions, tuple)
    assert isinstance(rules[0].acr_values, tuple)
    assert hash(rules)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("/a acr_values x,y\n/b acr_values z", id="siblings"),
        pytest.param("/admin acr_values x\n/administrator acr_values z", id="not-a-segment-prefix"),
        pytest.param("/ acr_values x,y\n/a acr_values y,z\n/a/b acr_values y", id="chain-with-common-value"),
        pytest.param("/a acr_values x\n/a/b max_age 5", id="only-one-has-acr"),
    ],
)
def test_parse_consistent_acr_values(source: str) -> None:
    parse_rules(source)


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        pytest.param(
            "/a acr_values x\n/a/b acr_values y",
            ["line 2 '/a/b acr_values y'", "'/a' (line 1 '/a acr_values x')", "no value in common"],
            id="nested",
        ),
        pytest.param(
            "/a/b acr_values y\n/ acr_values x",
            ["line 1 '/a/b acr_values y'", "'/' (line 2 '/ acr_values x')"],
            id="root-declared-later",
        ),
        pytest.param(
            "/ acr_values x,y\n/a acr_values y,z\n/a/b acr_values x,z",
            ["line 3 '/a/b acr_values x,z'", "'/'", "'/a'"],
            id="pairwise-fine-but-chain-empty",
        ),
        pytest.param(
            [{"path": "/a", "acr_values": ["x"]}, AccessRule("/a/b", acr_values=("y",))],
            ["item 2 AccessRule(", "'/a' (item 1 {"],
            id="iterable",
        ),
    ],
)
def test_parse_refuses_unsatisfiable_acr_values(source: Any, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rules(source)
    for fragment in fragments:
        assert fragment in str(caught.value)


# --------------------------------------------------------------------------- parsing: errors


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        pytest.param(
            "/x max_age 1\n/admin claim roles inclides admin",
            "line 2 '/admin claim roles inclides admin'",
            "unknown operator 'inclides' (equals, includes, present)",
            id="unknown-operator",
        ),
        pytest.param("/x claims c present", "line 1", "unknown keyword 'claims' (claim, max_age, acr_values)", id="kw"),
        pytest.param("/x Claim c present", "line 1", "unknown keyword 'Claim'", id="keyword-case"),
        pytest.param("/x", "line 1 '/x'", "nothing required after the path", id="path-only"),
        pytest.param("/x claim", "line 1", "missing claim name", id="claim-no-name"),
        pytest.param("/x claim c", "line 1", "missing operator after claim 'c'", id="claim-no-op"),
        pytest.param("/x claim c equals", "line 1", "missing value after equals", id="equals-no-value"),
        pytest.param("/x claim c includes", "line 1", "missing values after includes", id="includes-no-values"),
        pytest.param("/x claim c equals a b", "line 1", "unexpected 'b' after 'a'", id="equals-two-tokens"),
        pytest.param("/x claim c includes a, b", "line 1", "separate values with commas", id="includes-space"),
        pytest.param("/x claim c present yes", "line 1", "unexpected 'yes' after 'present'", id="present-extra"),
        pytest.param("/x claim c includes a,,b", "line 1", "empty item in value list 'a,,b'", id="includes-empty"),
        pytest.param("/x claim c includes a,", "line 1", "empty item", id="includes-trailing-comma"),
        pytest.param("/x claim c includes ,", "line 1", "empty item", id="includes-only-comma"),
        pytest.param("/x claim c equals a\x00", "line 1", "bad value", id="control-character-value"),
        pytest.param("/x claim rôle present", "line 1", "bad claim name 'rôle'", id="non-ascii-claim"),
        pytest.param("/x max_age", "line 1", "missing seconds after max_age", id="max-age-missing"),
        pytest.param("/x max_age -1", "line 1", "must not be negative", id="max-age-negative"),
        pytest.param("/x max_age 1.5", "line 1", "whole number of seconds, not '1.5'", id="max-age-float"),
        pytest.param("/x max_age 5m", "line 1", "whole number of seconds", id="max-age-unit"),
        pytest.param("/x max_age +5", "line 1", "whole number of seconds", id="max-age-plus"),
        pytest.param("/x max_age 1_0", "line 1", "whole number of seconds", id="max-age-underscore"),
        pytest.param("/x max_age ５", "line 1", "whole number of seconds", id="max-age-fullwidth-digit"),
        pytest.param("/x max_age 5 6", "line 1", "unexpected '6' after '5'", id="max-age-extra"),
        pytest.param("/x acr_values", "line 1", "missing values after acr_values", id="acr-missing"),
        pytest.param("/x acr_values a,,b", "line 1", "empty item in acr value list", id="acr-empty-item"),
        pytest.param("/x acr_values a b", "line 1", "unexpected 'b' after 'a'", id="acr-extra"),
        pytest.param(
            "/x acr_values a\n\n/x/ acr_values b",
            "line 3 '/x/ acr_values b'",
            "acr_values for '/x' already given (line 1 '/x acr_values a')",
            id="acr-twice",
        ),
        pytest.param("admin max_age 1", "line 1", "bad path 'admin'", id="relative-path"),
        pytest.param("*/admin max_age 1", "line 1", "bad path", id="glob-path"),
        pytest.param("/adm\x7fin max_age 1", "line 1", "bad path", id="del-in-path"),
        pytest.param("/caf\u00e9\u200b max_age 1", "line 1", "bad path", id="non-printable-path"),
        pytest.param("/a%2Fb max_age 1", "line 1", "encoded '/'", id="encoded-slash"),
        pytest.param("/a/%2e%2E max_age 1", "line 1", "dot segment", id="encoded-dot-dot"),
        pytest.param("/a/.%2e/b max_age 1", "line 1", "dot segment", id="half-encoded-dot-dot"),
        pytest.param("/a%g0 max_age 1", "line 1", "malformed", id="bad-escape"),
        pytest.param("/a%1 max_age 1", "line 1", "malformed", id="short-escape"),
        pytest.param("/a%09 max_age 1", "line 1", "control", id="encoded-tab"),
        pytest.param("/a%7f max_age 1", "line 1", "control", id="encoded-del"),
        pytest.param(
            "/ok max_age 1\n\n# c\n/x nope", "line 4 '/x nope'", "unknown keyword", id="line-numbers-count-all"
        ),
        pytest.param("/ok max_age 1; /x nope", "line 1 '/x nope'", "unknown keyword", id="semicolon-quotes-piece"),
        pytest.param("/ok max_age 1\x0b/x nope", "line 1", "unexpected", id="only-newline-separates-lines"),
    ],
)
def test_parse_text_errors(source: str, line: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rules(source)
    message = str(caught.value)
    assert message.startswith(line), message
    assert problem in message


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        pytest.param({"path": "/x", "claim": "c", "equals": "v", "role": "x"}, "unknown key(s) role", id="unknown-key"),
        pytest.param({"claim": "c", "present": True}, "missing 'path'", id="no-path"),
        pytest.param({"path": "x", "max_age": 1}, "bad path 'x'", id="bad-path"),
        pytest.param({"path": 7, "max_age": 1}, "path must be a string", id="path-not-str"),
        pytest.param({"path": "/x"}, "nothing required for '/x'", id="nothing"),
        pytest.param({"path": "/x", "claim": "c"}, "exactly one of equals, includes, present", id="claim-no-op"),
        pytest.param(
            {"path": "/x", "claim": "c", "equals": "a", "present": True}, "exactly one of", id="claim-two-ops"
        ),
        pytest.param({"path": "/x", "equals": "a"}, "equals without a claim", id="op-no-claim"),
        pytest.param({"path": "/x", "claim": "a b", "present": True}, "bad claim name 'a b'", id="claim-space"),
        pytest.param({"path": "/x", "claim": "", "present": True}, "bad claim name ''", id="claim-empty"),
        pytest.param({"path": "/x", "claim": 1, "present": True}, "bad claim name 1", id="claim-not-str"),
        pytest.param({"path": "/x", "claim": "c", "equals": ["a"]}, "equals needs one string value", id="eq-list"),
        pytest.param({"path": "/x", "claim": "c", "equals": None}, "equals needs one string value", id="eq-none"),
        pytest.param({"path": "/x", "claim": "c", "equals": 1.5}, "equals needs one string value", id="eq-float"),
        pytest.param({"path": "/x", "claim": "c", "equals": ""}, "bad value ''", id="eq-empty"),
        pytest.param({"path": "/x", "claim": "c", "includes": "admin"}, "includes needs a list", id="incl-str"),
        pytest.param({"path": "/x", "claim": "c", "includes": []}, "at least one value", id="incl-empty"),
        pytest.param({"path": "/x", "claim": "c", "includes": ["a", ""]}, "bad value ''", id="incl-empty-item"),
        pytest.param({"path": "/x", "claim": "c", "includes": ["a", 1]}, "bad value 1", id="incl-int-item"),
        pytest.param({"path": "/x", "claim": "c", "includes": ["a\n"]}, "bad value", id="incl-newline"),
        pytest.param({"path": "/x", "claim": "c", "present": False}, "present must be true", id="present-false"),
        pytest.param({"path": "/x", "claim": "c", "present": "yes"}, "present must be true", id="present-str"),
        pytest.param({"path": "/x", "max_age": -5}, "must not be negative", id="max-age-negative"),
        pytest.param({"path": "/x", "max_age": "300"}, "whole number of seconds", id="max-age-str"),
        pytest.param({"path": "/x", "max_age": True}, "whole number of seconds", id="max-age-bool"),
        pytest.param({"path": "/x", "max_age": 1.0}, "whole number of seconds", id="max-age-float"),
        pytest.param({"path": "/x", "acr_values": "mfa"}, "non-empty list of strings", id="acr-str"),
        pytest.param({"path": "/x", "acr_values": []}, "non-empty list of strings", id="acr-empty"),
        pytest.param({"path": "/x", "acr_values": ["a b"]}, "bad acr value 'a b'", id="acr-space"),
    ],
)
def test_parse_mapping_errors(item: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rules(["/ok max_age 1", item])
    message = str(caught.value)
    assert message.startswith("item 2 {"), message
    assert problem in message


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        pytest.param(AccessRule("admin", max_age=1), "bad path 'admin'", id="bad-path"),
        pytest.param(AccessRule("/x"), "nothing required for '/x'", id="nothing"),
        pytest.param(AccessRule("/x", (Condition("c", "inclides", ("a",)),)), "unknown operator 'inclides'", id="op"),
        pytest.param(AccessRule("/x", (Condition("c", "equals"),)), "equals needs exactly one value, got 0", id="eq0"),
        pytest.param(AccessRule("/x", (Condition("c", "equals", ("a", "b")),)), "got 2", id="eq2"),
        pytest.param(AccessRule("/x", (Condition("c", "includes"),)), "at least one value", id="includes0"),
        pytest.param(AccessRule("/x", (Condition("c", "present", ("a",)),)), "present takes no value", id="present1"),
        pytest.param(AccessRule("/x", (Condition("c", "equals", "ab"),)), "must be a tuple", id="values-str"),  # type: ignore[arg-type]
        pytest.param(AccessRule("/x", (Condition("c c", "present"),)), "bad claim name", id="claim-name"),
        pytest.param(AccessRule("/x", ("c present",)), "is not a Condition", id="not-condition"),  # type: ignore[arg-type]
        pytest.param(AccessRule("/x", max_age=-1), "must not be negative", id="max-age-negative"),
        pytest.param(AccessRule("/x", max_age="5"), "whole number of seconds", id="max-age-str"),  # type: ignore[arg-type]
        pytest.param(AccessRule("/x", acr_values="mfa"), "non-empty list of strings", id="acr-str"),  # type: ignore[arg-type]
        pytest.param(AccessRule("/x", acr_values=("",)), "bad acr value", id="acr-empty-item"),
    ],
)
def test_parse_access_rule_errors(rule: AccessRule, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rules(["/ok max_age 1", rule])
    message = str(caught.value)
    assert message.startswith("item 2 AccessRule("), message
    assert problem in message


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        pytest.param(["/ok max_age 1", 42], "item 2: int is not a rule line, AccessRule or mapping", id="int-item"),
        pytest.param([None], "item 1: NoneType is not", id="none-item"),
        pytest.param([b"/x max_age 1"], "item 1: bytes is not", id="bytes-item"),
        pytest.param(b"/x max_age 1", "must be text or a list of rules, not bytes", id="bytes-source"),
        pytest.param(42, "must be text or a list of rules, not int", id="int-source"),
        pytest.param(
            ["/ok max_age 1", "/a max_age 1\n/b nope"], "item 2, line 2 '/b nope': unknown keyword", id="multi"
        ),
    ],
)
def test_parse_iterable_errors(source: Any, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rules(source)
    assert problem in str(caught.value)


# --------------------------------------------------------------------------- round trip


def _render(rules: tuple[AccessRule, ...]) -> str:
    lines = []
    for rule in rules:
        for condition in rule.conditions:
            lines.append(f"{rule.path} claim {condition.claim} {condition.op} {','.join(condition.values)}".rstrip())
        if rule.max_age is not None:
            lines.append(f"{rule.path} max_age {rule.max_age}")
        if rule.acr_values:
            lines.append(f"{rule.path} acr_values {','.join(rule.acr_values)}")
    return "\n".join(lines)


_TOKEN = st.text(alphabet="abcxyz019:/._-", min_size=1, max_size=8).filter(lambda token: "," not in token)
_CONDITION = st.one_of(
    st.builds(lambda claim, value: Condition(claim, "equals", (value,)), _TOKEN, _TOKEN),
    st.builds(
        lambda claim, values: Condition(claim, "includes", tuple(dict.fromkeys(values))),
        _TOKEN,
        st.lists(_TOKEN, min_size=1, max_size=3),
    ),
    st.builds(lambda claim: Condition(claim, "present"), _TOKEN),
)
_RULE = st.builds(
    AccessRule,
    path=st.lists(st.sampled_from(["a", "b", "admin", "x-y"]), max_size=3).map(lambda parts: "/" + "/".join(parts)),
    conditions=st.lists(_CONDITION, max_size=3).map(lambda items: tuple(dict.fromkeys(items))),
    max_age=st.one_of(st.none(), st.integers(min_value=0, max_value=10**7)),
    acr_values=st.just(()),
).filter(lambda rule: bool(rule.conditions) or rule.max_age is not None)


@given(st.lists(_RULE, max_size=6))
def test_text_round_trip(items: list[AccessRule]) -> None:
    rules = parse_rules(items)
    assert parse_rules(_render(rules)) == rules
    assert parse_rules(_render(rules).replace("\n", " ; ")) == rules
    assert [rule.path for rule in rules] == sorted(
        {normalized_path(rule.path) for rule in items}, key=lambda p: (-len(p), p)
    )
