"""Failure codes carrying an application's text (``sign_in_denied:<reason>``): shown only when the middleware sent them.

The failure page reads its code from its URL, which anyone can link to.  The catalogue's
codes and the OAuth vocabulary are fixed texts; a :class:`~sso_middleware.errors.SignInDenied`
reason is the application's own word (up to 64 characters of ``[A-Za-z0-9_.-]``) and, typed
into a link, enough for a message on this site's page:
``sign_in_denied:account_locked.call_support_at_evil-help.example``.
So the failure redirect (:func:`failure_query`) adds ``sig``, an HMAC of the code under a key
derived from ``session_secret`` (:func:`~sso_middleware._sealing.app_key`), and the page
(:func:`shown_code`) shows such a code only when ``sig`` fits it; otherwise the bare
``sign_in_denied``.

Security caveat: a genuine link stays valid (anyone may pass on a link that the middleware
itself made for a denial), so it shows only reasons the application raised; it is no proof
of anything about the viewer.  An application that serves the failure page itself
(``serve_failure_page = false``) gets ``error`` and ``sig`` and must treat the reason as
untrusted text unless it checks ``sig`` (:func:`shown_code`).
"""

from __future__ import annotations

import base64
import hmac
from typing import Optional

from .._config.settings import SSOConfig
from .._sealing import app_key, same_text
from ..errors import SignInDenied

__all__ = ["SIG_PARAM", "failure_query", "shown_code"]

#: The failure page's query parameter holding the code's signature.
SIG_PARAM = "sig"
#: Codes whose part after the colon is the application's text (``provider_error:`` is checked against a vocabulary).
_SIGNED_PREFIX = SignInDenied.code + ":"


def _signature(config: SSOConfig, code: str) -> str:
    digest = hmac.digest(app_key(config, "failure-code"), code.encode("utf-8"), "sha256")
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def failure_query(config: SSOConfig, code: str) -> dict[str, str]:
    """The failure page's query parameters for ``code``: ``error``, and ``sig`` when the code carries a reason."""
    if code.startswith(_SIGNED_PREFIX):
        return {"error": code, SIG_PARAM: _signature(config, code)}
    return {"error": code}


def shown_code(config: SSOConfig, code: str, sig: Optional[str]) -> str:
    """The code the page may show: a reason-carrying code only with its signature, else its bare class code."""
    if not code.startswith(_SIGNED_PREFIX):
        return code
    if sig is not None and same_text(sig, _signature(config, code)):
        return code
    return SignInDenied.code
