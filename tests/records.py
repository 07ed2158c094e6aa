"""The middleware's stored records, read by the tests without the middleware.

Server-side records are sealed (:mod:`sso_middleware._sealing`): ``1.<MAC>.<payload>``.
These helpers take the payload out *without* checking the seal -- the code under
test checks it; the tests look at what is stored.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from sso_middleware import SSOConfig
from sso_middleware._sealing import app_key_text, record_prefix

from .conftest import SESSION_SECRET
from .fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER


def config_for(secret: str = SESSION_SECRET, **overrides: Any) -> SSOConfig:
    """The tests' configuration as far as keys go (issuer, client id, secret)."""
    settings = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
                "session_secret": secret, **overrides}
    return SSOConfig(**settings)


def redis_key(record_id: str, key: str = "session", secret: str = SESSION_SECRET) -> str:
    """Where a record of the tests' application lives in Redis."""
    return f"{record_prefix(config_for(secret))}:{record_id}:{key}"


def cookie_keys(secret: str = SESSION_SECRET) -> dict[str, str]:
    """Beaker's ``encrypt_key`` and ``validate_key`` of the cookie store, as the middleware derives them."""
    config = config_for(secret)
    return {"encrypt_key": app_key_text(config, "cookie encryption"),
            "validate_key": app_key_text(config, "cookie signature")}


def unsealed(raw: bytes) -> bytes:
    """The payload of a sealed value (its seal is not checked here)."""
    tag, mac, payload = raw.split(b".", 2)
    assert tag == b"1" and len(mac) == 43, raw[:60]
    return payload


def file_container(path: Any) -> dict[str, Any]:
    """The dict a file-store record holds (sealed JSON; ``{"session": text}``)."""
    with open(path, "rb") as handle:
        container: dict[str, Any] = json.loads(unsealed(handle.read()))
    return container


def session_data(text: str) -> dict[str, Any]:
    """A Beaker session record's text: base64 of zlib of JSON."""
    data: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)))
    return data
