"""Extra authorization-request parameters: the rules, in one place.

Three sources add parameters to the provider's ``/authorize`` request:

* ``authorize_params``: fixed ``name=value`` pairs sent on every request
  (checked when the middleware is built);
* ``forward_params``: names of query parameters that ``/auth/login`` and
  ``/auth/sso`` pass through (default ``login_hint screen_hint ui_locales``);
* ``authorize_params_hook(environ) -> dict``: per-request parameters computed
  by the application (a callable; ``module:function`` in ini files and the
  environment).

Every name and value meets the same rules (:func:`check_param`): names are
short tokens, values printable text of bounded length; ``prompt`` only from
:data:`SAFE_PROMPTS` (never ``none``: the middleware alone asks for a silent
sign-in, and a silent first attempt is never overridden); the protocol
parameters of :data:`PROTOCOL_PARAMS` can never be set this way (``scope``
only when ``forward_params`` lists it explicitly, and then it only *adds*
scopes to the configured ones); nor can the parameters the middleware sets
from its own, checked settings (:data:`OWN_PARAMS`).

A forwarded value that breaks a rule is refused with a 400
(``invalid_authorize_param``), not dropped: silently dropping ``prompt=login``
would sign the user in without the fresh login the link asked for.  Query
parameters that are not in ``forward_params`` are ignored (links carry
``utm_*`` and the like).

Auth0 Organizations (``organization``/``invitation``) have their own rules,
also here: :func:`requested_organization` and :func:`checked_organization`.

Security caveat: the per-request parameters are chosen by whoever made the
link (any web page can send a browser to ``/auth/login``).  They can ask the
provider for things (a login hint, a language, a fresh login) but never
weaken the sign-in: ``state``, ``nonce``, PKCE, the redirect URI, the client
and the configured scopes are the middleware's own, and the organization the
link names is checked in the ID token.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import unquote

from .._config.setting_files import imported_callable
from ..errors import (
    AuthorizeHookFailed,
    ConfigError,
    InvalidAuthorizeParam,
    InvalidOrganization,
    OrganizationNotAllowed,
)

log = logging.getLogger("sso_middleware")

#: Parameters of the protocol itself: set by the middleware, never by a setting, a link or a hook.
PROTOCOL_PARAMS = frozenset({
    "state", "nonce", "redirect_uri", "code_challenge", "code_challenge_method", "client_id",
    "response_type", "response_mode", "request", "request_uri", "scope",
})
#: Parameters the middleware sets from its own (checked) settings; the setting to use instead.
OWN_PARAMS: Mapping[str, str] = {
    "connection": "the connection query parameter or default_connection (checked against allowed_connections)",
    "audience": "the audience setting",
    "max_age": "an access rule 'PATH max_age N' (checked in the ID token)",
    "acr_values": "an access rule 'PATH acr_values V' (checked in the ID token)",
    "organization": "the organization setting or the login link's organization parameter (checked in the ID token)",
    "invitation": "the login link's invitation parameter",
    "organization_name": "nothing: it is display text, never sent",
    "target_url": "nothing: it is the middleware's own query parameter",
}
#: The only ``prompt`` values a setting, link or hook may ask for (space-separated, like the protocol's).
SAFE_PROMPTS = frozenset({"login", "consent", "select_account"})
DEFAULT_FORWARD = ("login_hint", "screen_hint", "ui_locales")

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Longest value of a forwarded or hook parameter (an e-mail address is at most 254 characters).
MAX_VALUE = 256
#: Longest value of a fixed ``authorize_params`` entry (it is in no cookie, only in the URL).
MAX_FIXED_VALUE = 1024
#: Most bytes the per-request parameters may take in the transaction cookie (as JSON, before encryption):
#: they must survive a silent sign-in's interactive retry, within the cookies' 4000-byte budget.
MAX_REQUEST_BYTES = 1024
#: Organization ids (``org_...``) and names, and invitation ids: printable ASCII without spaces.
_ORG = re.compile(r"[\x21-\x7e]{1,128}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 section 3.3

#: Names with rules of their own: never sent in another case either (as ``Prompt`` or ``Redirect_URI``).
_SPECIAL_NAMES = PROTOCOL_PARAMS | OWN_PARAMS.keys() | {"prompt"}

Hook = Callable[[dict[str, Any]], Optional[Mapping[str, Any]]]


def check_param(name: str, value: str, *, limit: int = MAX_VALUE, scope_allowed: bool = False) -> Optional[str]:
    """What is wrong with one parameter (a sentence), or None when it may be sent."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return "a parameter name must be 1-64 letters, digits or '_.:-'"
    if name != name.lower() and name.lower() in _SPECIAL_NAMES:
        # Some providers (ASP.NET's query collections: IdentityServer, Entra ID) read names case-insensitively.
        return f"{name!r} is {name.lower()!r} in another case: a parameter the middleware sets or checks itself"
    if name in PROTOCOL_PARAMS and not (name == "scope" and scope_allowed):
        return f"{name!r} is a protocol parameter the middleware sets itself"
    if name in OWN_PARAMS:
        return f"{name!r} is set by the middleware: use {OWN_PARAMS[name]}"
    if not isinstance(value, str):
        return f"the value of {name!r} must be a string"
    if not value or len(value) > limit:
        return f"the value of {name!r} must be 1-{limit} characters"
    if not value.isprintable() or value != value.strip():  # no control, format or line characters
        return f"the value of {name!r} must be printable text without surrounding spaces"
    if name == "prompt" and not set(value.split(" ")) <= SAFE_PROMPTS:
        return f"prompt may only be {', '.join(sorted(SAFE_PROMPTS))} (the middleware alone asks for 'none')"
    if name == "scope" and not all(_SCOPE_TOKEN.fullmatch(token) for token in value.split(" ")):
        return "scope must be space-separated scope tokens"
    return None


# -- settings (checked when the middleware is built) ------------------------


def parse_fixed(value: Any) -> tuple[tuple[str, str], ...]:
    """``authorize_params`` as (name, value) pairs, every one checked; raises :class:`ConfigError`.

    Accepts a mapping, a sequence of pairs, or text: ``name=value`` items separated by
    new lines or ``&``, percent-decoded (``ui_locales=fr%20en``).
    """
    if isinstance(value, str):
        pairs: list[tuple[Any, Any]] = []
        for item in re.split(r"[&\n]", value):
            if not item.strip():
                continue
            name, sep, text = item.strip().partition("=")
            if not sep:
                raise ConfigError("authorize_params", f"{item.strip()!r} is not name=value")
            pairs.append((unquote(name.strip()), unquote(text.strip())))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in value):
        pairs = [(pair[0], pair[1]) for pair in value]
    else:
        raise ConfigError("authorize_params", "must be a mapping of parameter names to values (or name=value text)")
    seen: set[str] = set()
    for name, text in pairs:
        problem = check_param(name, text, limit=MAX_FIXED_VALUE)
        if problem:
            raise ConfigError("authorize_params", problem)
        if name in seen:
            raise ConfigError("authorize_params", f"names {name!r} twice")
        seen.add(name)
    return tuple((str(name), str(text)) for name, text in pairs)


def check_forward(names: tuple[str, ...]) -> None:
    """Refuse a ``forward_params`` entry that may never come from a link; raises :class:`ConfigError`."""
    for name in names:
        sample = "login" if name == "prompt" else "x"
        problem = check_param(name, sample, scope_allowed=True)  # an explicitly listed scope is allowed
        if problem:
            raise ConfigError("forward_params", problem)


def resolve_hook(value: Any) -> Optional[Hook]:
    """``authorize_params_hook`` as a callable: given one, or imported from ``module:function``."""
    return imported_callable("authorize_params_hook", value)  # type: ignore[no-any-return]


def check_organization_setting(value: str) -> None:
    """``organization``: an Auth0 organization id (``org_...``) or name."""
    if value and not _ORG.fullmatch(value):
        raise ConfigError("organization", "must be an organization id (org_...) or name: printable, no spaces, "
                          "at most 128 characters")


# -- per request -------------------------------------------------------------


@dataclass(frozen=True)
class RequestParams:
    """What one sign-in asks the provider for beyond the protocol (kept for a silent retry).

    ``params``: forwarded and hook parameters (the fixed ones come from the settings);
    ``organization``: the organization sent (and expected in the ID token);
    ``invitation``: an Auth0 invitation id.
    """

    params: dict[str, str]
    organization: Optional[str] = None
    invitation: Optional[str] = None


def from_request(
    query: Any,
    environ: dict[str, Any],
    forward: tuple[str, ...],
    hook: Optional[Hook],
    organization: str,
) -> RequestParams:
    """The per-request parameters of a ``/auth/login`` or ``/auth/sso`` request.

    ``query``: the request's WebOb ``GET`` (a multidict).  Raises :class:`AuthFailure`:
    ``invalid_authorize_param`` (400) for a forwarded value that breaks a rule,
    ``organization_not_allowed`` (400) for an organization other than the configured
    one, ``authorize_hook_failed`` (503) when the hook raises or returns something
    that breaks a rule.
    """
    params: dict[str, str] = {}
    for name in forward:
        values = query.getall(name)
        if not values:
            continue
        problem = "given more than once" if len(values) > 1 else check_param(name, values[0], scope_allowed=True)
        if problem:
            raise InvalidAuthorizeParam(f"forwarded {name!r}: {problem}")
        params[name] = values[0]
    hooked = _hook_params(hook, environ, scope_allowed="scope" in forward)
    org = hooked.pop("organization", None) or _single(query, "organization")
    invitation = hooked.pop("invitation", None) or _single(query, "invitation")
    params.update(hooked)
    for name, value in (("organization", org), ("invitation", invitation)):
        if value is not None and not _ORG.fullmatch(value):
            raise InvalidAuthorizeParam(f"{name}: must be printable, no spaces, at most 128")
    if organization:  # a fixed organization: a link may repeat it, not name another one
        if org is not None and _same_kind(org, organization) and not organization_matches(organization, org):
            raise OrganizationNotAllowed("the link names another organization than the setting")
        org = organization
    if invitation is not None and org is None:
        raise InvalidAuthorizeParam("an invitation needs its organization")
    if len(json.dumps(params)) > MAX_REQUEST_BYTES:
        raise InvalidAuthorizeParam(f"the sign-in options exceed {MAX_REQUEST_BYTES} bytes")
    return RequestParams(params=params, organization=org, invitation=invitation)


def _single(query: Any, name: str) -> Optional[str]:
    values = query.getall(name)
    if len(values) > 1:
        raise InvalidAuthorizeParam(f"{name!r} given more than once")
    return str(values[0]) if values and values[0] else None


def _hook_params(hook: Optional[Hook], environ: dict[str, Any], scope_allowed: bool) -> dict[str, str]:
    """The hook's parameters, every one checked; any failure of the hook is ``authorize_hook_failed``."""
    if hook is None:
        return {}
    try:
        result = hook(environ)
    except Exception as exc:
        log.error("sso: authorize_params_hook raised %s", type(exc).__name__, exc_info=True)
        raise AuthorizeHookFailed(f"the hook raised {type(exc).__name__}") from None
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise AuthorizeHookFailed(f"the hook returned a {type(result).__name__}, not a dict")
    out: dict[str, str] = {}
    for name, value in result.items():
        if value is None:
            continue
        if name in ("organization", "invitation"):
            problem = None if isinstance(value, str) and _ORG.fullmatch(value) else f"{name} is not an id or name"
        else:
            problem = check_param(name, value, scope_allowed=scope_allowed)
        if problem:
            log.error("sso: authorize_params_hook returned a refused parameter: %s", problem)
            raise AuthorizeHookFailed(problem)
        out[name] = value
    return out


def for_attempt(
    fixed: tuple[tuple[str, str], ...], request: RequestParams, prompt: Optional[str]
) -> tuple[dict[str, str], Optional[str]]:
    """The extra parameters of one authorization request, and its ``prompt``.

    Per-request values replace fixed ones of the same name (the user's explicit
    choice wins).  A silent attempt (``prompt="none"``) keeps its ``prompt``: a
    forwarded or fixed prompt applies only to interactive attempts.
    """
    extra = dict(fixed)
    extra.update(request.params)
    asked = extra.pop("prompt", None)
    if request.organization:
        extra["organization"] = request.organization
    if request.invitation:
        extra["invitation"] = request.invitation
    return extra, prompt if prompt == "none" else (asked or prompt)


def merged_scope(configured: str, extra: Optional[str]) -> str:
    """The configured scopes plus those of an (explicitly allowed) forwarded ``scope``; never fewer."""
    scopes = configured.split()
    for token in (extra or "").split():
        if token not in scopes:
            scopes.append(token)
    return " ".join(scopes)


# -- Auth0 Organizations -----------------------------------------------------


def is_org_id(value: str) -> bool:
    """Auth0 organization ids start with ``org_``; anything else is an organization name."""
    return value.startswith("org_")


def _same_kind(a: str, b: str) -> bool:
    return is_org_id(a) == is_org_id(b)


def organization_matches(expected: str, organization: Union[str, Mapping[str, Any], None]) -> bool:
    """True when an organization (``{"id", "name"}``, or a requested id/name) is ``expected``.

    An id (``org_...``) is compared exactly with ``org_id``; a name case-insensitively with
    ``org_name`` (Auth0 stores names lower-case), as Auth0's SDKs do.
    """
    if isinstance(organization, str):
        organization = {"id": organization} if is_org_id(organization) else {"name": organization}
    if not organization:
        return False
    if is_org_id(expected):
        return organization.get("id") == expected
    name = organization.get("name")
    return isinstance(name, str) and name.casefold() == expected.casefold()


def checked_organization(expected: Optional[str], claims: Mapping[str, Any]) -> Optional[dict[str, Optional[str]]]:
    """The ID token's organization (``{"id": org_id, "name": org_name}``), checked against ``expected``.

    Auth0 requires this check whenever a sign-in asked for an organization: without it,
    a user of another organization (or of none) could sign in through the link.  With
    nothing expected, the token's organization is kept as it is (or None).  Raises
    :class:`AuthFailure` ``invalid_organization``.
    """
    org_id, org_name = claims.get("org_id"), claims.get("org_name")
    found = {
        "id": org_id if isinstance(org_id, str) and org_id else None,
        "name": org_name if isinstance(org_name, str) and org_name else None,
    }
    if expected and not organization_matches(expected, found):
        claim = "org_id" if is_org_id(expected) else "org_name"
        raise InvalidOrganization(f"the ID token's {claim} is missing or not the requested one")
    return found if found["id"] or found["name"] else None
