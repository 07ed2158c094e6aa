"""Claim-based access rules and step-up requirements per path prefix: what a rule is, and the decision.

Use this when signing in is not enough: some parts of the wrapped application
are for users with a certain claim (``/admin`` only for the ``admin`` role),
or need a recent or stronger authentication (``/billing`` only within five
minutes of signing in, ``/vault`` only after multi-factor authentication).
:func:`.rule_parsing.parse_rules` reads and checks the rules once, at start-up
(their syntax is described there), and :func:`decide` answers, per request,
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
  :func:`.rule_parsing.parse_rules`; pass them through it before use.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "GRANTED",
    "MAX_AGE_LEEWAY",
    "AccessRule",
    "Condition",
    "Decision",
    "StepUp",
    "as_sent",
    "claim_text",
    "configured_prefix",
    "decide",
    "longest_first",
    "matching",
    "normalized_path",
    "path_info_form",
    "scope_tokens",
    "step_up_for",
]

#: The :class:`Condition` operator that holds for scopes *granted* (an access token's), never for a claim.
GRANTED = "granted"

#: Seconds of leeway for ``max_age``: ID tokens state times in whole seconds.  Not ``clock_skew``: the
#: middleware measures an authentication's age on one clock at a time (see ``handlers.local_auth_time``).
MAX_AGE_LEEWAY = 1.0

_SLASHES = re.compile(r"/{2,}")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: What stays unencoded in a canonical prefix: RFC 3986's pchar and "/" (never "%": it is always an escape).
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


def scope_tokens(text: str) -> tuple[str, ...]:
    """The tokens of a space-separated value such as ``scope``, in order, without repeats or empties.

    RFC 6749 section 3.3 separates scope tokens with SP (``%x20``) alone: a tab, a newline
    or a Unicode space (``str.split()``'s separators) is part of a token, so an opaque
    ``x<NBSP>read:admin`` never yields the scope ``read:admin``.
    """
    return tuple(dict.fromkeys(token for token in text.split(" ") if token))


def claim_text(value: Any) -> Optional[str]:
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
    """One requirement on one claim: ``equals`` a value, ``includes`` one of some values, or is ``present``.

    ``op`` :data:`GRANTED` (claim ``scope``, written ``scope X`` in ``bearer_rules``) is
    about the scopes an access token was *granted*, passed to :meth:`holds` apart from
    the claims: a session user's own claim named ``scope`` grants nothing.
    """

    claim: str
    op: str
    values: tuple[str, ...] = ()

    def holds(self, claims: Mapping[str, Any], granted: Optional[Collection[str]] = None) -> bool:
        """Whether the user's ``claims`` (and ``granted`` scopes) satisfy this condition.  A missing claim never does.

        Values compare as text (``True`` is ``"true"``, ``3`` and ``3.0`` are ``"3"``).
        ``includes`` takes a list claim (any element) or a space-separated string claim
        (any token, :func:`scope_tokens`).  :data:`GRANTED` holds when one of the values is
        among ``granted`` (never without an access token's scopes).  An unknown operator or
        a wrong number of values never holds (fails closed).
        """
        if self.op == GRANTED:
            return granted is not None and any(value in granted for value in self.values)
        if self.claim not in claims:
            return False
        value = claims[self.claim]
        op = self.op
        if op == "equals":
            return len(self.values) == 1 and claim_text(value) == self.values[0]
        if op == "includes":
            if isinstance(value, str):
                return any(token in self.values for token in scope_tokens(value))
            if isinstance(value, (list, tuple)):
                return any(claim_text(item) in self.values for item in value)
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

    def overlaps(self, other: AccessRule) -> bool:
        """Whether some path is under both rules' paths (one covers the other's): checks between settings."""
        return self.applies_to(other.path_info) or other.applies_to(self.path_info)


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


def longest_first(rules: Iterable[AccessRule]) -> list[AccessRule]:
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
    return longest_first(found) if len(found) > 1 else found


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
    max_age, acr = _combined(longest_first(rules))
    if acr == ():
        raise ValueError(f"acr_values of {_acr_paths(rules)} have no value in common")
    if max_age is None and acr is None:
        return None
    return StepUp(max_age=max_age, acr_values=acr or ())


def _acr_paths(rules: Iterable[AccessRule]) -> str:
    return "rules " + ", ".join(repr(rule.path) for rule in longest_first(rules) if rule.acr_values)


def decide(
    rules: Sequence[AccessRule],
    path: str,
    claims: Mapping[str, Any],
    auth_time: Optional[float],
    acr: Optional[str],
    now: float,
    leeway: float,
    granted: Optional[Collection[str]] = None,
) -> Decision:
    """May a user with ``claims``, authenticated at ``auth_time`` with ``acr``, request ``path`` at ``now``?

    ``granted``: an access token's scopes (a session has none: None), the only thing
    :data:`GRANTED` conditions hold for.  Every condition of every rule that applies must hold, else the request is
    forbidden (checked first: authenticating again would not help).  Then the
    combined :class:`StepUp` of those rules must be satisfied, else the decision
    carries it.  No applicable rule: allowed.
    """
    applicable = matching(rules, path)
    if not applicable:
        return _ALLOWED
    for rule in applicable:
        for condition in rule.conditions:
            if not condition.holds(claims, granted):
                if condition.op == GRANTED:
                    reason = f"rule {rule.path!r}: scope {' '.join(condition.values)!r} not granted"
                else:
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
