"""The test kit: providers, a transport seam and a clock for testing applications behind sso_middleware.

Two providers, for two kinds of tests:

- :class:`FakeProvider` (:mod:`.fake_provider`): an OpenID Provider in memory, behind a
  ``requests`` transport. No Node.js, no network, no browser: build the middleware with
  ``SSOMiddleware(app, ..., http_transport=provider.transport())``, take its redirect to
  the provider, approve it with ``provider.authorize(location)`` and follow the returned
  callback URL with a WSGI test client (WebTest, Werkzeug's ``Client``). Tokens are real
  RS256 JWTs, PKCE and client credentials are checked, every request is recorded
  (``provider.requests_to("/oauth/token")``), and faults and forged tokens are one
  attribute away (``provider.fail``, ``provider.id_token_overrides``). Use it for the
  application's own tests: what a signed-in user sees, access rules, timeouts, refresh.
- :class:`DevProvider` (:mod:`.devprovider`): the real development provider bundled in
  ``sso_middleware/devprovider`` (the npm package ``oidc-provider`` configured like an
  Auth0 tenant), run as a ``node`` child process on loopback, with a login page driven
  like a browser (``login``, ``logout_confirm``), dynamic client registration, key
  rotation, back-channel logout and an event log. Use it for end-to-end tests over real
  HTTP (a served application, a real browser). Requires Node.js >= 20 and npm; the npm
  dependencies are installed once into ``$DEVPROVIDER_HOME`` or ``~/.cache/sso_middleware``
  (:func:`ensure_devprovider_installed`; :func:`npm_install_cached` does the same for any
  folder with a ``package-lock.json``).

And two seams of ``SSOMiddleware`` the kit serves:

- ``http_transport=``: a ``requests`` transport adapter mounted for every URL the middleware
  sends to the provider -- ``FakeProvider.transport()``, or a :class:`RecordingTransport`
  that forwards to the real network and keeps what it sent (to count JWKS fetches against a
  ``DevProvider``, say).
- ``clock=``: a callable returning the time; a :class:`Clock` follows the real time until a
  test sets or advances it, so timeouts are tested without sleeping.

This package is also a pytest plugin (entry point ``pytest11``: ``sso_middleware =
sso_middleware.testing``): the session-scoped fixture ``oidc_provider`` yields a started
``DevProvider``. From a bare checkout, load it with ``-p sso_middleware.testing``.

The development provider knows two users (``alice``/``alice-password``,
``bob``/``bob-password``) and, unless told otherwise, the demo clients ``app1`` and
``app2`` (see ``DEFAULT_CLIENTS``). For step-up authentication it has two ACR levels: a
password login gives ``ACR_PWD`` (amr ``["pwd"]``); a login with the one-time code
``DEV_OTP`` as well (``login(..., otp=DEV_OTP)``) gives ``ACR_MFA`` (amr ``["pwd",
"otp"]``). ID tokens always carry ``acr``, ``amr`` and ``auth_time``. ``acr_values`` is
enforced: a provider session whose acr is not among the requested values is shown the
login form again (interaction reason ``ACR_UNMET_REASON``; with ``prompt=none`` the client
gets ``login_required``), and so is a session older than ``max_age`` seconds. The login
answering such a prompt is accepted whatever level it reached, so the relying party must
check ``acr`` itself. Like an Auth0 tenant with an API, an authorization request with
``audience=DEFAULT_API`` (see ``DEFAULT_RESOURCES``; ``DevProvider(resources=...)`` for
others) gets a JWT access token for that API (RFC 9068, ``typ`` ``at+jwt``, ``aud`` the
identifier, ``scope`` the API's scopes requested); without it, the opaque userinfo token.
Tests normally register their own client with the redirect URIs they
need::

    def test_sign_in(oidc_provider):
        client = oidc_provider.register_client(["http://127.0.0.1:8080/auth/callback"])
        ...
        response = oidc_provider.login(requests.Session(), "alice", authorize_url)
        assert response.status_code == 303   # the redirect back to the client
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]

Security caveat: everything here is for tests on one machine. Both providers keep their
state in memory and their users' passwords and client secrets are public; the development
provider listens on loopback only and its dynamic registration is protected only by a
random initial access token known to this process. Never point a real deployment at them.
"""

from __future__ import annotations

import importlib.util

from .accounts import (
    ACR_MFA,
    ACR_PWD,
    ACR_UNMET_REASON,
    DEFAULT_API,
    DEFAULT_CLIENTS,
    DEFAULT_RESOURCES,
    DEFAULT_USERS,
    DEV_OTP,
    ROLES_CLAIM,
    ClientCredentials,
    DevUser,
    ProviderTLS,
)
from .clock import Clock
from .devprovider import DevProvider
from .errors import DevProviderError, DevProviderStartTimeout
from .fake_provider import FakeProvider
from .install import devprovider_source_dir, ensure_devprovider_installed, npm_install_cached
from .transport import FakeProviderAdapter, RecordingTransport, make_response

__all__ = [
    "ACR_MFA",
    "ACR_PWD",
    "ACR_UNMET_REASON",
    "DEFAULT_API",
    "DEFAULT_CLIENTS",
    "DEFAULT_RESOURCES",
    "DEFAULT_USERS",
    "DEV_OTP",
    "ROLES_CLAIM",
    "ClientCredentials",
    "Clock",
    "DevProvider",
    "DevProviderError",
    "DevProviderStartTimeout",
    "DevUser",
    "FakeProvider",
    "FakeProviderAdapter",
    "ProviderTLS",
    "RecordingTransport",
    "devprovider_source_dir",
    "ensure_devprovider_installed",
    "make_response",
    "npm_install_cached",
]

# The plugin's fixture, here because the registered plugin is this package; only when pytest
# is installed, so that the kit itself needs no pytest.
if importlib.util.find_spec("pytest") is not None:
    from .pytest_plugin import oidc_provider  # noqa: F401
