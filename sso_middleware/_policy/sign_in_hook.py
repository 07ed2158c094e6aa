"""The sign-in hook (``on_sign_in``) and the claims a session keeps (``userinfo_claims``).

``on_sign_in(claims, tokens, environ)`` is the application's say in a sign-in: called once
per successful callback (interactive or silent, ``prompt=none``), after the ID token,
userinfo, step-up and organization checks and before any session exists, with

* ``claims``: a fresh dict of the user's claims (the ID token's without its protocol
  claims, plus userinfo's): what would reach ``sso.userinfo``;
* ``tokens``: a read-only :class:`SignInTokens` (the ID token's full claims, the access
  token's expiry and granted scope, whether a refresh token came);
* ``environ``: the callback request's WSGI environ.

Its outcomes (:func:`run`):

* it returns a mapping: those are the claims kept (in the session, and in
  ``sso.userinfo``); it returns None: the ``claims`` dict it was given, changed in place
  or not;
* it raises :class:`~sso_middleware.errors.SignInDenied` (``reason``): no session, the
  failure page (403) shows ``sign_in_denied:<reason>``;
* it raises anything else, or returns claims that break a rule: no session, the failure
  page ``sign_in_hook_failed`` (503, never a 500 or a traceback) and one error log line.

Rules on the returned claims: a mapping of string names to JSON values (the session
stores JSON), at most :data:`MAX_CLAIMS_BYTES` as JSON, and ``sub`` exactly the ID
token's.  ``sub`` is not the hook's to change: back-channel logout finds sessions by the
provider's ``sub``, a refreshed ID token must carry the same ``sub``, and
``REMOTE_USER`` defaults to it; a hook mapping users to its own ids adds a claim of its
own (and may point ``remote_user_claim`` at it).

``userinfo_claims`` (an allow-list; empty keeps all) is applied after the hook, so the hook
sees every claim and its own additions are kept only when listed; ``sub`` is always kept.

Security caveats: ``tokens`` carries the raw access and ID tokens (for a hook that calls an
API or the provider at sign-in); they are bearer credentials: never log or store them.
The refresh token is not passed at all (only whether one exists): it outlives the
session, and a copy kept elsewhere would survive the revocation at sign-out.  The
hook runs on the request's thread, once per sign-in and concurrently for concurrent
sign-ins: a slow hook delays the callback (bound its own I/O).
"""

from __future__ import annotations

import copy
import json
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Optional

from .._config.setting_files import imported_callable
from .._redaction import Redactor
from ..errors import ConfigError, SignInDenied, SignInHookFailed
from .rules import GRANTED, AccessRule

log = logging.getLogger("sso_middleware")

#: Most bytes the claims a hook returns may take as JSON: they live in every session (and a cookie session's cookie).
MAX_CLAIMS_BYTES = 16 * 1024
#: Longest log line about a hook's failure (its message is the application's text).
_MAX_LOGGED = 300


@dataclass(frozen=True)
class SignInTokens:
    """What the provider issued at this sign-in, read-only, for the ``on_sign_in`` hook.

    ``id_token_claims``: the validated ID token's claims, all of them (``sid``,
    ``auth_time``, ``amr``...), as a read-only mapping of a copy; ``access_token_expires_at``:
    seconds since the epoch, None when the provider did not say; ``scope``: the scopes the
    token response granted (None when it did not say: then those asked for); ``has_refresh_token``:
    whether a refresh token came (it is never passed itself).

    Security caveat: ``access_token`` and ``id_token`` are the raw bearer tokens (not in
    ``repr``); never log or store them.
    """

    id_token_claims: Mapping[str, Any]
    access_token_expires_at: Optional[float]
    scope: Optional[str]
    has_refresh_token: bool
    access_token: str = field(repr=False)
    id_token: str = field(repr=False)

    @property
    def scopes(self) -> frozenset[str]:
        """``scope`` as a set of scope tokens (empty when not said)."""
        return frozenset((self.scope or "").split())

    @classmethod
    def issued(cls, id_token_claims: Mapping[str, Any], access_token_expires_at: Optional[float],
               scope: Optional[str], refresh_token: Optional[str], access_token: str, id_token: str) -> SignInTokens:
        return cls(id_token_claims=MappingProxyType(copy.deepcopy(dict(id_token_claims))),
                   access_token_expires_at=access_token_expires_at, scope=scope,
                   has_refresh_token=bool(refresh_token), access_token=access_token, id_token=id_token)


SignInHook = Callable[[dict[str, Any], SignInTokens, dict[str, Any]], Optional[Mapping[str, Any]]]


# -- settings (checked when the middleware is built) ------------------------


def resolve(value: Any) -> Optional[SignInHook]:
    """``on_sign_in`` as a callable: given one, or imported from ``module:function`` (ini files, environment)."""
    return imported_callable("on_sign_in", value)  # type: ignore[no-any-return]


def check_userinfo_claims(kept: tuple[str, ...], remote_user_claim: str, rules: tuple[AccessRule, ...]) -> None:
    """``userinfo_claims`` must keep what other settings read from the session's claims; raises :class:`ConfigError`.

    A ``remote_user_claim`` or an access rule's claim left out would be missing from every
    session: ``REMOTE_USER`` never set, the rule refusing everyone -- a quiet failure, refused here.
    """
    if not kept:
        return
    for name in kept:
        if not (0 < len(name) <= 256 and name.isprintable() and " " not in name):
            raise ConfigError("userinfo_claims", f"{name[:40]!r} is not a claim name")
    listed = set(kept) | {"sub"}
    if remote_user_claim not in listed:
        raise ConfigError("userinfo_claims", f"must list remote_user_claim {remote_user_claim!r} (or REMOTE_USER "
                          "would never be set)")
    for rule in rules:
        for condition in rule.conditions:
            if condition.op != GRANTED and condition.claim not in listed:
                raise ConfigError("userinfo_claims", f"must list {condition.claim!r}: the access rule for "
                                  f"{rule.path!r} reads it (without it the rule refuses everyone)")


def kept_claims(claims: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The claims a session keeps: those ``userinfo_claims`` lists (and ``sub``), or all when it lists none."""
    if not allowed:
        return dict(claims)
    names = set(allowed) | {"sub"}
    return {name: value for name, value in claims.items() if name in names}


# -- per sign-in ---------------------------------------------------------------


def run(hook: Optional[SignInHook], claims: dict[str, Any], tokens: SignInTokens,
        environ: dict[str, Any]) -> dict[str, Any]:
    """The claims to keep after the hook: see the module docstring for the outcomes.

    Raises :class:`SignInDenied` (the hook's own) or :class:`SignInHookFailed`.
    """
    if hook is None:
        return claims
    sub = claims["sub"]
    given = copy.deepcopy(claims)
    try:
        result = hook(given, tokens, environ)
    except SignInDenied as denied:
        # Raised again with a detail fit for the log line the middleware writes for every failure:
        # the user named, the application's text with this sign-in's tokens masked and escaped.
        detail = f"sub={sub!r}" + (f": {_shown(denied.detail, tokens)}" if denied.detail else "")
        raise SignInDenied(denied.reason, detail) from None
    except Exception as exc:
        log.error("sso: on_sign_in raised %s for sub=%r at %s: %s", type(exc).__name__, sub, _where(exc),
                  _shown(str(exc), tokens))
        raise SignInHookFailed(f"the hook raised {type(exc).__name__}") from None
    chosen = given if result is None else result
    problem = _problem(chosen, sub)
    if problem:
        log.error("sso: on_sign_in returned claims that are refused for sub=%r: %s", sub, problem)
        raise SignInHookFailed(problem)
    return dict(chosen)


def _problem(claims: Any, sub: Any) -> Optional[str]:
    """What is wrong with the claims a hook returned (a sentence naming no value), or None."""
    if not isinstance(claims, Mapping):
        return f"a {type(claims).__name__}, not a mapping of claims"
    if not all(isinstance(name, str) for name in claims):
        return "a claim name that is not a string"
    if "sub" not in claims:
        return "no 'sub' (the hook may not remove it)"
    if claims["sub"] != sub:
        return "another 'sub' than the ID token's (the hook may not change it)"
    try:
        size = len(json.dumps(claims, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return "a claim value that is not JSON (text, numbers, booleans, null, lists, objects)"
    if size > MAX_CLAIMS_BYTES:
        return f"{size} bytes of claims as JSON, more than {MAX_CLAIMS_BYTES}"
    return None


def _where(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame of ``exc``: where the hook failed, without a traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def _shown(text: str, tokens: SignInTokens) -> str:
    """The application's message as it may be logged: this sign-in's tokens masked, control characters escaped."""
    redactor = Redactor([tokens.access_token, tokens.id_token])
    shown = redactor.show(text)
    return shown if len(shown) <= _MAX_LOGGED else shown[:_MAX_LOGGED] + "..."
