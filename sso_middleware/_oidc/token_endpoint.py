"""The token endpoint's two halves: the form a token request sends, and reading what comes back.

:func:`token_request` is used by the client and by the doctor, so the doctor tests exactly
what the middleware sends.  Security caveat: the body carries the client's credentials (or a
fresh signed assertion): never log it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlencode

from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

from .._config.settings import SSOConfig
from . import client_auth


def token_request(
    config: SSOConfig, grant_type: str, endpoint: str, **params: str
) -> tuple[str, Optional[tuple[str, str]]]:
    """The form body of a token request to ``endpoint`` and the Basic credentials, per ``token_endpoint_auth_method``.

    The client authentication comes from :func:`.client_auth.authenticate` (a fresh
    assertion for the JWT methods).  The doctor uses it too, so it tests exactly what
    the middleware sends.
    """
    fields, auth = client_auth.authenticate(config, endpoint)
    extra: dict[str, Any] = dict(params)  # all by keyword (the stubs would let a str fill include_client_id)
    body = prepare_token_request(grant_type, **extra)
    return (body + "&" + urlencode(fields) if fields else body), auth


def optional_str(tokens: Mapping[str, Any], name: str) -> Optional[str]:
    value = tokens.get(name)
    return value if isinstance(value, str) and value else None


def expires_at(tokens: Mapping[str, Any], now: float) -> Optional[float]:
    """When the access token expires (``expires_in`` after ``now``), or None when the provider does not say."""
    expires_in = tokens.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():  # some providers send a string
        expires_in = int(expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        return None
    try:
        seconds = float(expires_in)
    except OverflowError:
        return None
    return now + max(0.0, seconds) if math.isfinite(seconds) else None
