"""``api_session(environ)``: a ``requests`` session that calls APIs with the signed-in user's access token.

Use it in the wrapped application, on a request the middleware let through with
``keep_access_token`` on::

    from sso_middleware import api_session

    def orders(environ, start_response):
        with api_session(environ) as api:
            answer = api.get("https://api.example.com/orders")
        ...

What it returns is a :class:`requests_oauthlib.OAuth2Session` (everything a
``requests.Session`` does, plus ``.token`` and ``.authorized``) with:

- the user's current access token -- ``environ["sso.access_token"]``, which the middleware
  refreshed before the request when it was due -- sent as ``Authorization: Bearer ...``
  with every request (``withhold_token=True`` leaves it off), never in a URL or a body;
- ``http_timeout`` as the timeout of every request that does not pass its own;
- the middleware's enterprise-network settings (``http_proxy``, ``http_trust_env``,
  ``ca_bundle``, ``tls_client_cert``/``tls_client_key``), applied as they are to its own
  provider calls (:class:`~sso_middleware._oidc.egress.Egress`); never ``REQUESTS_CA_BUNDLE``
  or ``~/.netrc``;
- the middleware's plain-http rule in place of oauthlib's process-wide
  ``OAUTHLIB_INSECURE_TRANSPORT`` switch (which this package never sets): ``https://``, or
  ``http://`` to a loopback host when ``allow_insecure_http`` is on.  Any other URL, a
  redirect's included, raises :class:`oauthlib.oauth2.InsecureTransportError` before
  anything is sent; such a loopback ``http://`` request never goes through a proxy (the
  token would leave the machine in clear text).

The session never refreshes the token: it holds no refresh token and no client secret,
and ``fetch_token``/``refresh_token`` refuse.  Refreshing is the middleware's job (once per
expiry across threads, processes and hosts), before the request reaches the application;
so make a session per request, and do not keep one beyond it.

Security caveats: the token is a bearer credential; send it only to the API it was issued
for (``audience``).  It stays out of ``repr`` and of log lines, but ``.token`` and
``.access_token`` hand it to whoever asks.  A redirect keeps the ``Authorization`` header
only on the same host and port (``requests``' rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn, Optional, Union

import requests
from oauthlib.oauth2 import Client, InsecureTransportError
from oauthlib.oauth2.rfc6749.tokens import prepare_bearer_headers
from requests_oauthlib import OAuth2Session
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .._config.settings import SSOConfig
from .._config.urls import insecure_transport
from .._oidc.egress import Egress, goes_direct
from .environ import ACCESS_TOKEN_EXPIRES_KEY, API_SETTINGS_KEY, require_access_token


def _default(setting: str) -> Any:
    """A setting's default, read from :class:`SSOConfig` (its one home)."""
    return next(item.default for item in fields(SSOConfig) if item.name == setting)


_DEFAULT_TIMEOUT: float = _default("http_timeout")
_AUTH_HEADER = "auth_header"  # oauthlib's name for the Authorization header placement


@dataclass(frozen=True)
class APISettings:
    """What :func:`api_session` takes from the middleware's configuration; the middleware puts it in the environ.

    Without one (an environ the middleware did not build) the defaults apply, the strictest:
    https only, the default CA bundle, no proxy, the default ``http_timeout``.
    """

    timeout: float = _DEFAULT_TIMEOUT
    egress: Egress = field(default_factory=Egress)
    allow_insecure_http: bool = False

    @classmethod
    def from_config(cls, config: SSOConfig) -> APISettings:
        return cls(config.http_timeout, Egress.from_config(config), config.allow_insecure_http)

    def check_url(self, url: str) -> None:
        """Raise :class:`InsecureTransportError` for a URL the token may not travel to (the plain-http rule).

        The URL is read by urllib3's parser, the one ``requests`` connects with: a URL that
        another parser reads as a loopback host cannot reach another host this way.
        """
        try:
            parts = parse_url(url)
        except LocationParseError:
            parts = None
        if parts is None or not parts.host:
            raise InsecureTransportError(description="api_session: the URL must be an absolute https:// URL")
        scheme = (parts.scheme or "").lower()
        problem = insecure_transport(scheme, parts.host, self.allow_insecure_http)
        if problem:
            # scheme, host and port only: a path, a query or credentials in the URL may be secrets
            shown = f"{scheme}://{parts.host}" + (f":{parts.port}" if parts.port is not None else "")
            raise InsecureTransportError(description=f"api_session: {shown} {problem}")


class UserTokenClient(Client):
    """The oauthlib client of an :func:`api_session`: the user's token, only in the header, only where allowed."""

    def __init__(self, token: dict[str, Any], settings: APISettings) -> None:
        super().__init__("", token=token)  # no client id: this client never talks to the provider
        self.settings = settings

    def add_token(
        self,
        uri: str,
        http_method: str = "GET",
        body: Optional[str] = None,
        headers: Optional[dict[str, str]] = None,
        token_placement: Optional[str] = None,
        **kwargs: Any,
    ) -> tuple[str, dict[str, str], Optional[str]]:
        """``uri``, the headers with ``Authorization: Bearer``, ``body``: for a URL the plain-http rule allows.

        In place of oauthlib's own check (``https://`` unless ``OAUTHLIB_INSECURE_TRANSPORT``)
        and its expiry check: the middleware handed over a token it considers usable.
        The caller's ``headers`` are copied, not changed.
        """
        self.settings.check_url(uri)
        if token_placement not in (None, _AUTH_HEADER):
            raise ValueError("api_session sends the access token in the Authorization header only")
        return uri, prepare_bearer_headers(str(self.access_token), dict(headers or {})), body

    def __repr__(self) -> str:
        return "UserTokenClient(token=***)"


class APISession(OAuth2Session):
    """What :func:`api_session` returns: see this module's docstring."""

    def __init__(self, access_token: str, expires_at: Optional[float], settings: APISettings) -> None:
        token: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer"}
        if expires_at is not None:
            token["expires_at"] = expires_at
        self.settings = settings
        self._user_client = UserTokenClient(token, settings)
        super().__init__(client=self._user_client, token=token)
        # Like the provider calls: proxies from the egress settings alone (see send), trust from
        # ca_bundle, and nothing from REQUESTS_CA_BUNDLE or ~/.netrc.
        self.trust_env = False
        self.verify = settings.egress.verify
        self.cert = settings.egress.cert

    def __repr__(self) -> str:
        return f"<APISession token=*** {self.settings!r}>"

    def request(  # type: ignore[override]
        self,
        method: Union[str, bytes],
        url: Union[str, bytes],
        data: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        withhold_token: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with the user's token (unless ``withhold_token``) and ``http_timeout`` unless given.

        ``OAuth2Session.request`` is bypassed: it applies oauthlib's process-wide https rule
        and would refresh an expired token itself.  The plain-http rule is checked here (before
        ``requests`` reads the URL) and again in :meth:`send`, for every request and redirect.
        """
        text_url = url.decode("utf-8") if isinstance(url, bytes) else url
        text_method = method.decode("ascii") if isinstance(method, bytes) else method
        self.settings.check_url(text_url)
        kwargs.setdefault("timeout", self.settings.timeout)  # a timeout given, None included, is the caller's
        sent_headers = dict(headers or {})
        if self.token and not withhold_token:
            for hook in self.compliance_hook["protected_request"]:
                text_url, sent_headers, data = hook(text_url, sent_headers, data)
            text_url, sent_headers, data = self._user_client.add_token(text_url, http_method=text_method, body=data,
                                                                       headers=sent_headers)
        return requests.Session.request(self, text_method, text_url, data=data, headers=sent_headers, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Every request and every redirect passes here: the plain-http rule, the egress proxy, the timeout."""
        url = str(request.url)
        self.settings.check_url(url)
        kwargs.setdefault("timeout", self.settings.timeout)
        if goes_direct(url):  # plain http to loopback: the token must not reach any proxy, not even the caller's
            kwargs["proxies"] = {}
        elif not kwargs.get("proxies"):  # proxies the caller gave win; else the egress settings decide per URL
            kwargs["proxies"] = self.settings.egress.proxies_for(url)
        return super().send(request, **kwargs)

    def fetch_token(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("api_session carries the signed-in user's token; the middleware signs users in")

    def refresh_token(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("api_session never refreshes the token: the middleware does, before each request")


def api_session(environ: Mapping[str, Any]) -> OAuth2Session:
    """A ``requests_oauthlib.OAuth2Session`` calling APIs with the signed-in user's current access token.

    Needs ``keep_access_token``; raises :class:`~sso_middleware.NoAccessToken` (saying why,
    from ``environ["sso.token_error"]``) when the request has no usable token.  It applies
    the middleware's ``http_timeout``, proxy, CA bundle and client certificate, allows
    ``http://`` only to a loopback host with ``allow_insecure_http``, and never refreshes
    the token itself (the middleware does, before the request): make one per request::

        with api_session(environ) as api:
            orders = api.get("https://api.example.com/orders").json()

    Security caveat: the token is a bearer credential; call only the API it was issued for.
    """
    token = require_access_token(environ)
    settings = environ.get(API_SETTINGS_KEY)
    if not isinstance(settings, APISettings):
        settings = APISettings()
    expires_at = environ.get(ACCESS_TOKEN_EXPIRES_KEY)
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        expires_at = None
    return APISession(token, expires_at, settings)

