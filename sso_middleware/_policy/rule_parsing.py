"""Access rules read from text, mappings or hand-built objects, and checked once, at start-up.

Rules are written one requirement per line, in a PasteDeploy ini value or an
``SSO_ACCESS_RULES`` environment variable (lines may also be separated by
``;``; blank lines are ignored, and a ``#`` at the start of a line or right
after a ``;`` starts a comment that runs to the end of the line)::

    /admin    claim https://example.com/roles includes admin,owner
    /reports  claim email_verified equals true
    /beta     claim org_id present
    /billing  max_age 300
    /vault    acr_values urn:dev:loa:mfa

Rules for access tokens (``bearer_rules``, ``parse_rules(..., bearer=True)``) take
``claim`` and ``scope`` lines, and no ``max_age``/``acr_values`` (those are about a
sign-in, which an access token does not describe); ``scope`` lines only there::

    /api/admin  scope read:admin
    /api/write  scope write:messages,write:files

``scope A,B`` requires every one of the scopes (each becomes a :data:`.rules.GRANTED`
condition, held against the scopes the access token was granted -- its space-separated
``scope`` claim, RFC 9068 section 2.2.3 -- and never against a session user's claims).

:func:`parse_rules` turns them into :class:`.rules.AccessRule` values (one
:class:`ValueError` that quotes the offending line), which :func:`.rules.decide`
evaluates per request.  Pure: no WSGI, no I/O, nothing but the standard library.

Security caveat: what is refused here is what could never be enforced (a prefix
:func:`.rules.configured_prefix` cannot guard, acr values no user could satisfy
together, a claim name or value that cannot travel); the limits of what a rule
protects are :mod:`.rules`' caveats.  Hand-built :class:`.rules.AccessRule` objects
are checked only when they pass through :func:`parse_rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

from .rules import GRANTED, AccessRule, Condition, claim_text, configured_prefix, longest_first

__all__ = ["BEARER_KEYWORDS", "KEYWORDS", "MAX_MAX_AGE", "OPERATORS", "SCOPE_CLAIM", "parse_rules"]

OPERATORS = ("equals", "includes", "present")
#: The largest max_age accepted (about 31 years): larger numbers would not even fit a float.
MAX_MAX_AGE = 10**9
KEYWORDS = ("claim", "max_age", "acr_values")
#: What a rule for access tokens (``bearer_rules``) may say.
BEARER_KEYWORDS = ("claim", "scope")
#: The claim a ``scope`` requirement reads (RFC 9068 section 2.2.3: space-separated scope tokens).
SCOPE_CLAIM = "scope"
#: A scope token (RFC 6749 section 3.3): printable ASCII without spaces, '"' or '\\'.
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+\Z")

_NAME_RE = re.compile(r"[\x21-\x7e]+\Z")
_INT_RE = re.compile(r"-?[0-9]+\Z")
_MAPPING_KEYS = frozenset({"path", "claim", "equals", "includes", "present", "max_age", "acr_values", "scope"})


class _Builder:
    """Collects requirements per normalized path, merging as it goes."""

    def __init__(self, bearer: bool = False) -> None:
        self.bearer = bearer
        self.keywords = BEARER_KEYWORDS if bearer else KEYWORDS
        self.conditions: dict[str, list[Condition]] = {}
        self.max_age: dict[str, int] = {}
        self.acr: dict[str, tuple[tuple[str, ...], str]] = {}  # path -> (values, where they were given)

    def touch(self, path: str) -> None:
        self.conditions.setdefault(path, [])

    def add_condition(self, path: str, condition: Condition) -> None:
        if condition not in self.conditions[path]:
            self.conditions[path].append(condition)

    def allow(self, keyword: str, where: str) -> None:
        """Refuse a requirement this kind of rule cannot enforce, saying where it belongs."""
        if keyword in self.keywords:
            return
        if keyword == "scope":
            raise ValueError(f"{where}: scope requirements are for bearer_rules (sessions carry no scopes)")
        raise ValueError(f"{where}: {keyword} is about a sign-in, which an access token does not describe "
                         "(use access_rules for sessions)")

    def add_scopes(self, path: str, scopes: tuple[str, ...], where: str) -> None:
        self.allow("scope", where)
        for scope in scopes:
            self.add_condition(path, Condition(SCOPE_CLAIM, GRANTED, (scope,)))

    def add_max_age(self, path: str, seconds: int) -> None:
        current = self.max_age.get(path)
        self.max_age[path] = seconds if current is None else min(current, seconds)

    def add_acr(self, path: str, values: tuple[str, ...], where: str) -> None:
        if path in self.acr:
            raise ValueError(f"{where}: acr_values for {path!r} already given ({self.acr[path][1]})")
        self.acr[path] = (values, where)

    def build(self) -> tuple[AccessRule, ...]:
        rules = longest_first(
            AccessRule(
                path=path,
                conditions=tuple(conditions),
                max_age=self.max_age.get(path),
                acr_values=self.acr[path][0] if path in self.acr else (),
            )
            for path, conditions in self.conditions.items()
        )
        # All rules that apply to one path nest in each other (they are its prefixes), so checking
        # each rule against all rules that apply to its own path covers every request path.
        with_acr = [rule for rule in reversed(rules) if rule.acr_values]  # shortest first
        for position, rule in enumerate(with_acr):
            common = set(rule.acr_values)
            outers = []
            for outer in with_acr[:position]:
                if outer.applies_to(rule.path_info):
                    common &= set(outer.acr_values)
                    outers.append(f"{outer.path!r} ({self.acr[outer.path][1]})")
                    if not common:
                        raise ValueError(
                            f"{self.acr[rule.path][1]}: acr_values have no value in common with those of "
                            f"{' and '.join(outers)}; no user could ever satisfy them all"
                        )
        return tuple(rules)


def _path(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"{where}: path must be a string, not {type(raw).__name__}")
    try:
        return configured_prefix(raw)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _NAME_RE.match(raw):
        raise ValueError(f"{where}: bad claim name {raw!r} (printable ASCII without spaces)")
    return raw


def _value(raw: Any, where: str, what: str, spaces: bool = True) -> str:
    if not isinstance(raw, str) or not raw or not raw.isprintable() or (not spaces and " " in raw):
        raise ValueError(f"{where}: bad {what} {raw!r} (a non-empty printable string{'' if spaces else ', no spaces'})")
    return raw


def _comma_list(raw: str, where: str, what: str) -> tuple[str, ...]:
    items = raw.split(",")
    if any(not item for item in items):
        raise ValueError(f"{where}: empty item in {what} list {raw!r}")
    return _unique(_value(item, where, what) for item in items)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _seconds(raw: Any, where: str, text: bool = False) -> int:
    if text and isinstance(raw, str):
        if not _INT_RE.match(raw):
            raise ValueError(f"{where}: max_age must be a whole number of seconds, not {raw!r}")
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"{where}: max_age must be a whole number of seconds, not {raw!r}")
    if raw < 0:
        raise ValueError(f"{where}: max_age must not be negative ({raw})")
    if raw > MAX_MAX_AGE:
        raise ValueError(f"{where}: max_age must be at most {MAX_MAX_AGE} seconds ({raw})")
    return raw


def _condition(claim: Any, op: Any, values: Any, where: str) -> Condition:
    name = _name(claim, where)
    if op not in OPERATORS:
        raise ValueError(f"{where}: unknown operator {op!r} ({', '.join(OPERATORS)})")
    if not isinstance(values, (tuple, list)):
        raise ValueError(f"{where}: values of claim {name!r} must be a tuple of strings")
    checked = tuple(_value(value, where, "value") for value in values)
    if op == "equals" and len(checked) != 1:
        raise ValueError(f"{where}: equals needs exactly one value, got {len(checked)}")
    if op == "includes" and not checked:
        raise ValueError(f"{where}: includes needs at least one value")
    if op == "present" and checked:
        raise ValueError(f"{where}: present takes no value")
    return Condition(name, op, _unique(checked) if op == "includes" else checked)


def _parse_line(line: str, where: str, builder: _Builder) -> None:
    tokens = line.split()
    path = _path(tokens[0], where)
    if len(tokens) < 2:
        raise ValueError(f"{where}: nothing required after the path ({', '.join(builder.keywords)})")
    keyword, rest = tokens[1], tokens[2:]
    if keyword in KEYWORDS + BEARER_KEYWORDS:
        builder.allow(keyword, where)

    def exactly(count: int, what: str, hint: str = "") -> None:
        if len(rest) < count:
            raise ValueError(f"{where}: missing {what}")
        if len(rest) > count:
            raise ValueError(f"{where}: unexpected {' '.join(rest[count:])!r} after {rest[count - 1]!r}{hint}")

    builder.touch(path)
    if keyword == "claim":
        if len(rest) < 1:
            raise ValueError(f"{where}: missing claim name")
        if len(rest) < 2:
            raise ValueError(f"{where}: missing operator after claim {rest[0]!r} ({', '.join(OPERATORS)})")
        op = rest[1]
        if op not in OPERATORS:
            raise ValueError(f"{where}: unknown operator {op!r} ({', '.join(OPERATORS)})")
        if op == "present":
            exactly(2, "", " (present takes no value)")
            builder.add_condition(path, _condition(rest[0], op, (), where))
        elif op == "equals":
            exactly(3, "value after equals", " (equals takes exactly one value)")
            builder.add_condition(path, _condition(rest[0], op, (rest[2],), where))
        else:
            exactly(3, "values after includes", " (separate values with commas, no spaces)")
            builder.add_condition(path, _condition(rest[0], op, _comma_list(rest[2], where, "value"), where))
    elif keyword == "max_age":
        exactly(1, "seconds after max_age")
        builder.add_max_age(path, _seconds(rest[0], where, text=True))
    elif keyword == "acr_values":
        exactly(1, "values after acr_values", " (separate values with commas, no spaces)")
        builder.add_acr(path, _acr_list(_comma_list(rest[0], where, "acr value"), where), where)
    elif keyword == "scope":
        exactly(1, "scopes after scope", " (separate scopes with commas, no spaces)")
        builder.add_scopes(path, _scope_list(rest[0].split(","), where), where)
    else:
        raise ValueError(f"{where}: unknown keyword {keyword!r} ({', '.join(builder.keywords)})")


def _parse_text(text: str, label: str, builder: _Builder) -> None:
    for number, physical in enumerate(text.split("\n"), start=1):
        for piece in physical.split(";"):
            piece = piece.strip()
            if piece.startswith("#"):
                break  # a comment runs to the end of the line
            if piece:
                _parse_line(piece, f"{label}line {number} {piece!r}", builder)


def _parse_mapping(item: Mapping[str, Any], where: str, builder: _Builder) -> None:
    unknown = sorted(str(key) for key in item if key not in _MAPPING_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} ({', '.join(sorted(_MAPPING_KEYS))})")
    if "path" not in item:
        raise ValueError(f"{where}: missing 'path'")
    path = _path(item["path"], where)
    ops = [op for op in OPERATORS if op in item]
    if "claim" in item:
        if len(ops) != 1:
            raise ValueError(f"{where}: claim needs exactly one of {', '.join(OPERATORS)}")
    elif ops:
        raise ValueError(f"{where}: {ops[0]} without a claim")
    if not ({"claim", "max_age", "acr_values", "scope"} & set(item)):
        raise ValueError(f"{where}: nothing required for {path!r} ({', '.join(builder.keywords)})")
    for keyword in ("claim", "max_age", "acr_values", "scope"):
        if keyword in item:
            builder.allow(keyword, where)
    builder.touch(path)
    if "claim" in item:
        op = ops[0]
        raw = item[op]
        if op == "equals":
            text = claim_text(raw) if isinstance(raw, (str, bool, int)) else None
            if text is None:
                raise ValueError(f"{where}: equals needs one string value, not {raw!r}")
            values: tuple[Any, ...] = (text,)
        elif op == "includes":
            if not isinstance(raw, (list, tuple)):
                raise ValueError(f"{where}: includes needs a list of strings, not {raw!r}")
            values = tuple(raw)
        else:
            if raw is not True:
                raise ValueError(f"{where}: present must be true, not {raw!r}")
            values = ()
        builder.add_condition(path, _condition(item["claim"], op, values, where))
    if "max_age" in item:
        builder.add_max_age(path, _seconds(item["max_age"], where))
    if "acr_values" in item:
        builder.add_acr(path, _acr_list(item["acr_values"], where), where)
    if "scope" in item:
        raw_scopes = item["scope"]
        if isinstance(raw_scopes, str):
            raw_scopes = raw_scopes.split()
        if not isinstance(raw_scopes, (list, tuple)):
            raise ValueError(f"{where}: scope needs a list of scopes (or a space-separated string), not {raw_scopes!r}")
        builder.add_scopes(path, _scope_list(raw_scopes, where), where)


def _scope_list(raw: Any, where: str) -> tuple[str, ...]:
    """Scope tokens (RFC 6749 section 3.3), at least one; each is required."""
    if not raw or any(not isinstance(scope, str) or not _SCOPE_RE.match(scope) for scope in raw):
        raise ValueError(f"{where}: bad scope list {list(raw)!r} (scope tokens: printable ASCII without spaces, "
                         "quotes or backslashes)")
    return _unique(raw)


def _acr_list(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError(f"{where}: acr_values needs a non-empty list of strings, not {raw!r}")
    return _unique(_acr_value(value, where) for value in raw)


def _acr_value(raw: Any, where: str) -> str:
    """An acr value: printable ASCII without spaces (it travels in a space-separated parameter and a header)."""
    if not isinstance(raw, str) or not _NAME_RE.match(raw):
        raise ValueError(f"{where}: bad acr value {raw!r} (printable ASCII without spaces)")
    return raw


def _parse_rule(rule: AccessRule, where: str, builder: _Builder) -> None:
    path = _path(rule.path, where)
    if not isinstance(rule.conditions, (tuple, list)):
        raise ValueError(f"{where}: conditions must be a tuple of Condition")
    if not rule.conditions and rule.max_age is None and not rule.acr_values:
        raise ValueError(f"{where}: nothing required for {path!r}")
    if rule.max_age is not None:
        builder.allow("max_age", where)
    if rule.acr_values:
        builder.allow("acr_values", where)
    builder.touch(path)
    for condition in rule.conditions:
        if not isinstance(condition, Condition):
            raise ValueError(f"{where}: {condition!r} is not a Condition")
        if condition.op == GRANTED:
            builder.add_scopes(path, _scope_list(condition.values, where), where)
            continue
        builder.add_condition(path, _condition(condition.claim, condition.op, condition.values, where))
    if rule.max_age is not None:
        builder.add_max_age(path, _seconds(rule.max_age, where))
    if rule.acr_values:
        builder.add_acr(path, _acr_list(rule.acr_values, where), where)


def parse_rules(
    source: Union[str, Iterable[Union[str, AccessRule, Mapping[str, Any]]]], *, bearer: bool = False
) -> tuple[AccessRule, ...]:
    """Parse and check access rules; the result is ordered by path, longest first.

    ``bearer``: rules for access tokens (``bearer_rules``): ``claim`` and ``scope``
    requirements only (``{"path": "/api/admin", "scope": ["read:admin"]}`` in a mapping).

    ``source`` is the text syntax (see the module docstring) or an iterable of
    rule lines, :class:`AccessRule` objects and mappings such as
    ``{"path": "/admin", "claim": "roles", "includes": ["admin"]}``,
    ``{"path": "/x", "claim": "c", "equals": "v"}``,
    ``{"path": "/x", "claim": "c", "present": True}`` or
    ``{"path": "/x", "max_age": 300, "acr_values": ["a"]}``.
    Requirements for one path merge into one rule: conditions all hold (AND),
    the smaller ``max_age`` wins, ``acr_values`` may be given once.  Any error
    raises :class:`ValueError` naming the line (or item) and the problem.
    """
    builder = _Builder(bearer)
    if isinstance(source, str):
        _parse_text(source, "", builder)
        return builder.build()
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise ValueError(f"access rules must be text or a list of rules, not {type(source).__name__}")
    for number, item in enumerate(source, start=1):
        label = f"item {number}"
        if isinstance(item, str):
            _parse_text(item, label + ", ", builder)
        elif isinstance(item, AccessRule):
            _parse_rule(item, f"{label} {item!r}", builder)
        elif isinstance(item, Mapping):
            _parse_mapping(item, f"{label} {dict(item)!r}", builder)
        else:
            raise ValueError(f"{label}: {type(item).__name__} is not a rule line, AccessRule or mapping")
    return builder.build()
