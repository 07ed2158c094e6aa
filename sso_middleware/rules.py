"""Claim-based access rules and step-up requirements per path prefix.

Use this when signing in is not enough: some parts of the wrapped application
are for users with a certain claim (``/admin`` only for the ``admin`` role),
or need a recent or stronger authentication (``/billing`` only within five
minutes of signing in, ``/vault`` only after multi-factor authentication).
Rules are written one requirement per line, in a PasteDeploy ini value or an
``SSO_ACCESS_RULES`` environment variable (lines may also be separated by
``;``; blank lines are ignored, and a ``#`` at the start of a line or right
after a ``;`` starts a comment that runs to the end of the line)::

    /admin    claim https://example.com/roles includes admin,owner
    /reports  claim email_verified equals true
    /beta     claim org_id present
    /billing  max_age 300
    /vault    acr_values urn:dev:loa:mfa

:func:`parse_rules` checks them once, at start-up (one :class:`ValueError`
that quotes the offending line), and :func:`decide` answers, per request,
whether the signed-in user may proceed, must be forbidden, or must first
authenticate again (:class:`StepUp`).  All requirements of every rule whose
prefix covers the path must hold (AND); a longer prefix never relaxes a
shorter one.  This module is pure: no WSGI, no I/O, nothing but the standard
library.

Security caveats:

- A rule protects what the *application* routes under its prefix, as far as
  :func:`matching` can predict it: repeated slashes collapse, and a path is
  checked both with its ``.``/``..`` segments resolved and as sent (apps route
  ``/admin/..`` under ``/admin``), but the match is case-sensitive and knows nothing of
  an application that routes ``/ADMIN``, ``/admin.json``, ``/admin;x`` or a
  decoded ``%2F`` to the same view as ``/admin``.  Protect the paths as the
  application actually serves them, and prefer a rule on a prefix that cannot
  be reached another way.
- Requests are matched by ``PATH_INFO``, which the server has percent-decoded
  (PEP 3333: the bytes sent, as latin-1 text), so each rule compares its
  :attr:`AccessRule.path_info`, its prefix decoded the same way once, at
  start-up: ``/caf%C3%A9`` and ``/café`` both guard what a client reaches as
  ``/caf%C3%A9``.  A prefix with an encoded ``/`` (``%2F``), an encoded dot
  segment, an encoded control character or a malformed escape is refused
  (:func:`configured_prefix`): it could not be told apart in ``PATH_INFO``.
- Claims are only as trustworthy as the ID token and userinfo they came from,
  and as fresh as the session: a role removed at the provider stays in the
  session until the user signs in again.  Use ``max_age`` where that matters.
- ``acr`` and ``auth_time`` are what the provider asserted.  A provider that
  ignores ``acr_values`` or ``max_age`` in the authorization request simply
  returns a token that fails the check again -- the caller must not loop.
- :attr:`Decision.reason` is for the operator's log: it names the rule and the
  failing claim and operator, never the user's claim values.  Do not show it
  to the user.
- Hand-built :class:`AccessRule` objects are validated only by
  :func:`parse_rules`; pass them through it before use.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "MAX_AGE_LEEWAY",
    "AccessRule",
    "Condition",
    "Decision",
    "StepUp",
    "as_sent",
    "configured_prefix",
    "decide",
    "matching",
    "normalized_path",
    "parse_rules",
    "path_info_form",
    "step_up_for",
]

OPERATORS = ("equals", "includes", "present")
#: Seconds of leeway for ``max_age``: ID tokens state times in whole seconds.  Not ``clock_skew``: the
#: middleware measures an authentication's age on one clock at a time (see ``handlers.local_auth_time``).
MAX_AGE_LEEWAY = 1.0
#: The largest max_age accepted (about 31 years): larger numbers would not even fit a float.
MAX_MAX_AGE = 10**9
KEYWORDS = ("claim", "max_age", "acr_values")

_SLASHES = re.compile(r"/{2,}")
_NAME_RE = re.compile(r"[\x21-\x7e]+\Z")
_INT_RE = re.compile(r"-?[0-9]+\Z")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: What stays unencoded in a canonical prefix: RFC 3986's pchar and "/" (never "%": it is always an escape).
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_MAPPING_KEYS = frozenset({"path", "claim", "equals", "includes", "present", "max_age", "acr_values"})


def _text(value: Any) -> Optional[str]:
    """A claim value as the text rules compare it with; None for anything that never matches."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return None


@dataclass(frozen=True)
class Condition:
    """One requirement on one claim: ``equals`` a value, ``includes`` one of some values, or is ``present``."""

    claim: str
    op: str
    values: tuple[str, ...] = ()

    def holds(self, claims: Mapping[str, Any]) -> bool:
        """Whether the user's ``claims`` satisfy this condition.  A missing claim never does.

        Values compare as text (``True`` is ``"true"``, ``3`` and ``3.0`` are ``"3"``).
        ``includes`` takes a list claim (any element) or a space-separated string claim
        (any token, as in ``scope``).  An unknown operator or a wrong number of values
        never holds (fails closed).
        """
        if self.claim not in claims:
            return False
        value = claims[self.claim]
        op = self.op
        if op == "equals":
            return len(self.values) == 1 and _text(value) == self.values[0]
        if op == "includes":
            if isinstance(value, str):
                return any(token in self.values for token in value.split())
            if isinstance(value, (list, tuple)):
                return any(_text(item) in self.values for item in value)
            return False
        if op == "present":
            if value is None:
                return False
            return not (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)
        return False


@dataclass(frozen=True)
class StepUp:
    """An authentication requirement: recent enough (``max_age`` seconds) and/or strong enough (``acr_values``)."""

    max_age: Optional[int] = None
    acr_values: tuple[str, ...] = ()

    def satisfied_by(self, auth_time: Optional[float], acr: Optional[str], now: float, leeway: float) -> bool:
        """Whether an authentication at ``auth_time`` with ``acr`` meets this requirement at ``now``.

        With ``max_age`` an unknown (or non-finite) ``auth_time`` never does; with
        ``acr_values`` a missing ``acr`` never does.
        """
        if self.max_age is not None and (
            auth_time is None or not math.isfinite(auth_time) or not now - auth_time <= self.max_age + leeway
        ):
            return False
        return not (self.acr_values and (acr is None or acr not in self.acr_values))


@dataclass(frozen=True)
class AccessRule:
    """Everything required under one path prefix (``"/"`` is every path)."""

    path: str
    conditions: tuple[Condition, ...] = ()
    max_age: Optional[int] = None
    acr_values: tuple[str, ...] = ()
    #: ``path`` as ``PATH_INFO`` carries it (percent-decoded, latin-1 text): what requests are compared with.
    path_info: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path_info", path_info_form(self.path) if isinstance(self.path, str) else "")

    def applies_to(self, path: str) -> bool:
        """Whether this rule covers ``path``, a ``PATH_INFO`` that must already be :func:`normalized_path`."""
        prefix = self.path_info
        if prefix == "/":
            return True
        return path == prefix or (path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/")


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`decide`.

    ``allowed`` false with ``step_up`` set: the user's claims are fine, only the
    authentication is too old or too weak -- authenticate again with that
    requirement.  ``allowed`` false without ``step_up``: forbidden.  ``reason``
    is for the operator's log only.
    """

    allowed: bool
    step_up: Optional[StepUp] = None
    reason: str = ""


_ALLOWED = Decision(True)


def normalized_path(path: str) -> str:
    """The path a WSGI application will most likely route for ``path`` (a ``PATH_INFO``).

    Repeated slashes collapse, ``.`` and ``..`` segments are resolved, a trailing
    slash goes, ``""`` is ``"/"``; the result always starts with exactly one ``/``.
    """
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    return posixpath.normpath(_SLASHES.sub("/", path))


def _longest_first(rules: Iterable[AccessRule]) -> list[AccessRule]:
    return sorted(rules, key=lambda rule: (-len(rule.path), rule.path))


def matching(rules: Sequence[AccessRule], path: str) -> list[AccessRule]:
    """The rules that apply to ``path``, the most specific (longest path) first.

    A rule applies when it covers the path as :func:`normalized_path` resolves it
    *or* as it is sent (repeated slashes collapsed, dot segments kept): WSGI
    applications route ``PATH_INFO`` without resolving ``..`` (and gunicorn decodes
    ``%2F`` into it), so ``/admin/..`` reaches a catch-all route under ``/admin``
    although it resolves to ``/``.  Both readings are checked: fail closed.
    """
    resolved = normalized_path(path)
    sent = as_sent(path)
    found = [rule for rule in rules if rule.applies_to(resolved) or (sent != resolved and rule.applies_to(sent))]
    return _longest_first(found) if len(found) > 1 else found


def as_sent(path: str) -> str:
    """``path`` with repeated slashes collapsed and a trailing slash dropped, its dot segments kept."""
    collapsed = _SLASHES.sub("/", path if path.startswith("/") else "/" + path)
    return collapsed.rstrip("/") or "/"


def _combined(rules: Sequence[AccessRule]) -> tuple[Optional[int], Optional[tuple[str, ...]]]:
    """Smallest max_age and the intersection of acr_values (None: no requirement; (): none possible).

    ``rules`` must be ordered longest path first.
    """
    max_age: Optional[int] = None
    acr: Optional[tuple[str, ...]] = None
    for rule in rules:
        if rule.max_age is not None and (max_age is None or rule.max_age < max_age):
            max_age = rule.max_age
        if rule.acr_values:
            acr = tuple(rule.acr_values) if acr is None else tuple(v for v in acr if v in rule.acr_values)
    return max_age, acr


def step_up_for(rules: Sequence[AccessRule]) -> Optional[StepUp]:
    """The combined authentication requirement of ``rules``, or None when none of them demands one.

    The smallest ``max_age`` wins; ``acr_values`` is the intersection of the rules'
    non-empty sets, in the order of the most specific (longest-path) rule.
    Raises :class:`ValueError` when those sets have nothing in common (no
    authentication could satisfy them; :func:`parse_rules` refuses such rules).
    """
    max_age, acr = _combined(_longest_first(rules))
    if acr == ():
        raise ValueError(f"acr_values of {_acr_paths(rules)} have no value in common")
    if max_age is None and acr is None:
        return None
    return StepUp(max_age=max_age, acr_values=acr or ())


def _acr_paths(rules: Iterable[AccessRule]) -> str:
    return "rules " + ", ".join(repr(rule.path) for rule in _longest_first(rules) if rule.acr_values)


def decide(
    rules: Sequence[AccessRule],
    path: str,
    claims: Mapping[str, Any],
    auth_time: Optional[float],
    acr: Optional[str],
    now: float,
    leeway: float,
) -> Decision:
    """May a user with ``claims``, authenticated at ``auth_time`` with ``acr``, request ``path`` at ``now``?

    Every condition of every rule that applies must hold, else the request is
    forbidden (checked first: authenticating again would not help).  Then the
    combined :class:`StepUp` of those rules must be satisfied, else the decision
    carries it.  No applicable rule: allowed.
    """
    applicable = matching(rules, path)
    if not applicable:
        return _ALLOWED
    for rule in applicable:
        for condition in rule.conditions:
            if not condition.holds(claims):
                missing = "" if condition.claim in claims else " (claim missing)"
                reason = f"rule {rule.path!r}: claim {condition.claim!r} {condition.op} not satisfied{missing}"
                return Decision(False, None, reason)
    max_age, acr_values = _combined(applicable)
    if acr_values == ():
        return Decision(False, None, f"acr_values of {_acr_paths(applicable)} have no value in common")
    if max_age is None and acr_values is None:
        return _ALLOWED
    step_up = StepUp(max_age=max_age, acr_values=acr_values or ())
    if step_up.satisfied_by(auth_time, acr, now, leeway):
        return _ALLOWED
    problems = []
    if max_age is not None and not StepUp(max_age=max_age).satisfied_by(auth_time, None, now, leeway):
        source = next(rule.path for rule in applicable if rule.max_age == max_age)
        if auth_time is None or not math.isfinite(auth_time):
            problems.append(f"rule {source!r}: max_age {max_age} needs the time of authentication, which is unknown")
        else:
            problems.append(f"rule {source!r}: authentication older than max_age {max_age}")
    if acr_values and not StepUp(acr_values=acr_values).satisfied_by(None, acr, now, leeway):
        source = next(rule.path for rule in applicable if rule.acr_values)
        what = "no acr" if acr is None else "acr not one of the accepted values"
        problems.append(f"rule {source!r}: {what} (acr_values {' '.join(acr_values)})")
    return Decision(False, step_up, "step-up needed: " + "; ".join(problems))


# --------------------------------------------------------------------------- parsing


class _Builder:
    """Collects requirements per normalized path, merging as it goes."""

    def __init__(self) -> None:
        self.conditions: dict[str, list[Condition]] = {}
        self.max_age: dict[str, int] = {}
        self.acr: dict[str, tuple[tuple[str, ...], str]] = {}  # path -> (values, where they were given)

    def touch(self, path: str) -> None:
        self.conditions.setdefault(path, [])

    def add_condition(self, path: str, condition: Condition) -> None:
        if condition not in self.conditions[path]:
            self.conditions[path].append(condition)

    def add_max_age(self, path: str, seconds: int) -> None:
        current = self.max_age.get(path)
        self.max_age[path] = seconds if current is None else min(current, seconds)

    def add_acr(self, path: str, values: tuple[str, ...], where: str) -> None:
        if path in self.acr:
            raise ValueError(f"{where}: acr_values for {path!r} already given ({self.acr[path][1]})")
        self.acr[path] = (values, where)

    def build(self) -> tuple[AccessRule, ...]:
        rules = _longest_first(
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


def configured_prefix(raw: str) -> str:
    """A configured path prefix, checked and in one canonical form; ValueError if it could guard nothing.

    The canonical form is ASCII and percent-encoded (``/café`` and ``/caf%c3%a9`` are
    both ``/caf%C3%A9``), normalized like :func:`normalized_path`, so checking it again
    changes nothing.  :attr:`AccessRule.path_info` holds its decoded form, the one
    ``PATH_INFO`` has.  ``%2F`` (a server decodes it into a ``/`` that then separates
    segments the client never meant), an encoded ``.``/``..`` segment, an encoded
    control character and a malformed escape are refused rather than guessed at.
    """
    if not raw.startswith("/") or not raw.isprintable() or any(char.isspace() for char in raw):
        raise ValueError(f"bad path {raw!r} (must start with '/', printable, without spaces)")
    bad = _ESCAPE_RE.search(raw)
    if bad is not None:
        raise ValueError(f"bad path {raw!r}: malformed percent escape {raw[bad.start():bad.start() + 3]!r}")
    if re.search(r"%2[Ff]", raw):
        raise ValueError(f"bad path {raw!r}: an encoded '/' (%2F) cannot be guarded (servers decode it into '/')")
    decoded = unquote_to_bytes(raw.encode("utf-8"))
    if any(byte < 0x20 or byte == 0x7F for byte in decoded):
        raise ValueError(f"bad path {raw!r}: it decodes to a control character")
    segments = decoded.split(b"/")
    if any(segment in (b".", b"..") and original not in (".", "..")
           for segment, original in zip(segments, raw.split("/"))):
        raise ValueError(f"bad path {raw!r}: an encoded dot segment ('%2e') cannot be guarded")
    encoded = quote(decoded, safe=_PATH_SAFE)
    return normalized_path(encoded.rstrip("/") or "/")


def path_info_form(prefix: str) -> str:
    """A canonical prefix (see :func:`configured_prefix`) as ``PATH_INFO`` carries it (PEP 3333).

    Servers percent-decode the request path and hand its bytes over as latin-1
    text, so ``/caf%C3%A9`` is compared as ``/caf\xc3\xa9``.  Never raises.
    """
    return unquote_to_bytes(prefix).decode("latin-1")


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
        raise ValueError(f"{where}: nothing required after the path ({', '.join(KEYWORDS)})")
    keyword, rest = tokens[1], tokens[2:]

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
    else:
        raise ValueError(f"{where}: unknown keyword {keyword!r} ({', '.join(KEYWORDS)})")


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
    if not ({"claim", "max_age", "acr_values"} & set(item)):
        raise ValueError(f"{where}: nothing required for {path!r} ({', '.join(KEYWORDS)})")
    builder.touch(path)
    if "claim" in item:
        op = ops[0]
        raw = item[op]
        if op == "equals":
            text = _text(raw) if isinstance(raw, (str, bool, int)) else None
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
    builder.touch(path)
    for condition in rule.conditions:
        if not isinstance(condition, Condition):
            raise ValueError(f"{where}: {condition!r} is not a Condition")
        builder.add_condition(path, _condition(condition.claim, condition.op, condition.values, where))
    if rule.max_age is not None:
        builder.add_max_age(path, _seconds(rule.max_age, where))
    if rule.acr_values:
        builder.add_acr(path, _acr_list(rule.acr_values, where), where)


def parse_rules(source: Union[str, Iterable[Union[str, AccessRule, Mapping[str, Any]]]]) -> tuple[AccessRule, ...]:
    """Parse and check access rules; the result is ordered by path, longest first.

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
    builder = _Builder()
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
