"""The suite's fake provider: :mod:`sso_middleware.testing.fake_provider`, and the suite's app origin.

The in-memory provider is public (the test kit users get); this module keeps the names
the suite has always imported from here, plus ``BASE_URL``, the origin of the application
the tests' middleware serves (``https://app2.example``).
"""

from __future__ import annotations

from sso_middleware.testing.fake_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUED_SECRETS,
    ISSUER,
    FakeProvider,
    Fault,
    Grant,
    RefreshGrant,
)
from sso_middleware.testing.grants import issued
from sso_middleware.testing.keys import at_hash, public_jwk, rsa_key, s256
from sso_middleware.testing.transport import FakeProviderAdapter, make_response

__all__ = [
    "BASE_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ISSUED_SECRETS",
    "ISSUER",
    "FakeProvider",
    "FakeProviderAdapter",
    "Fault",
    "Grant",
    "RefreshGrant",
    "at_hash",
    "issued",
    "make_response",
    "public_jwk",
    "rsa_key",
    "s256",
]

BASE_URL = "https://app2.example"
