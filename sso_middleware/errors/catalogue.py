"""The catalogue of failure codes (:data:`ERRORS`), built from the classes, and :func:`describe`.

Security caveat: a code arrives in a URL anyone can craft; :func:`describe` shows only codes of
the catalogue and OAuth vocabulary, never free text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from . import json_routes, provider, request, store  # noqa: F401 - every class declared before the catalogue
from .base import AuthFailure, SSOFailure
from .provider import ProviderRefused
from .request import SIGN_IN_DENIED_REASON, SignInDenied


def _kinds(base: type[SSOFailure]) -> Iterator[type[SSOFailure]]:
    """``base`` and every subclass, in the order they are declared."""
    yield base
    for kind in base.__subclasses__():
        yield from _kinds(kind)


def _catalogue() -> Mapping[str, type[SSOFailure]]:
    # ProviderRefused's codes are one per error value (``provider_error:<error>``): describe() handles them.
    found: dict[str, type[SSOFailure]] = {}
    for kind in _kinds(SSOFailure):
        if "code" in vars(kind) and not issubclass(kind, ProviderRefused):
            if kind.code in found:
                raise TypeError(f"failure code {kind.code!r} is both {found[kind.code].__name__} and {kind.__name__}")
            found[kind.code] = kind
    return MappingProxyType(found)


#: The failure page of each code: code -> the class declaring it (its ``status`` and ``message``).
ERRORS: Mapping[str, type[SSOFailure]] = _catalogue()

#: ``error`` values of RFC 6749, OpenID Connect Core and RFC 9126 that the failure page names.
OAUTH_ERRORS = frozenset({
    "access_denied", "invalid_request", "unauthorized_client", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "login_required", "consent_required", "interaction_required",
    "account_selection_required", "invalid_request_uri", "invalid_request_object", "request_not_supported",
    "request_uri_not_supported", "registration_not_supported", "invalid_grant", "invalid_client",
    "unsupported_grant_type", "invalid_target", "mfa_required", "unauthorized",
})


def provider_error_code(error: str) -> str:
    """The failure code for an ``error`` value the provider sent, made safe for a URL."""
    return ProviderRefused.from_error(error).code


def describe(code: str) -> tuple[int, str, str]:
    """Status, human message and the code to show for a failure code.

    The code arrives in a URL anyone can craft, so only codes of the catalogue and
    provider errors from the OAuth/OpenID vocabulary are shown; anything else is a
    generic 400 shown as ``unknown_error``, and no free text reaches the page.
    """
    kind = ERRORS.get(code)
    if kind is not None:
        return kind.status, kind.message, code
    denied, _, reason = code.partition(":")
    if denied == SignInDenied.code and SIGN_IN_DENIED_REASON.fullmatch(reason):
        return SignInDenied.status, SignInDenied.message, code
    prefix = ProviderRefused.code + ":"
    detail = code[len(prefix):] if code.startswith(prefix) else ""
    if detail in OAUTH_ERRORS:
        return ProviderRefused.status, ProviderRefused.message.format(detail=detail.replace("_", " ")), code
    if detail:
        return ProviderRefused.status, ProviderRefused.message.format(detail="other reason"), ProviderRefused.code
    return AuthFailure.status, AuthFailure.message, AuthFailure.code
