"""Checks of this client at the provider: credentials, client authentication, PAR, what to register.

Security caveat: ``check_client_credentials`` sends the configured client credentials to
the token endpoint, exactly as a callback would but with a made-up authorization code (so
nothing is issued), and ``check_pushed_authorization`` pushes one authorization request:
run the doctor against the provider you configured.  No finding quotes a secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from ..._oidc import client_auth
from ..._oidc.client import OIDCClient
from ..._oidc.token_endpoint import token_request
from ...errors import ParFailed, ProviderError, SigningAlgorithmMismatch
from ..wording import describe_error, names, provider_words
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_client_credentials(ctx: Context) -> Iterator[Finding]:
    """The token endpoint accepts client_id and client_secret (a made-up code must fail with ``invalid_grant``)."""
    config = ctx.config
    assert ctx.metadata is not None
    code = "sso-middleware-check-" + secrets.token_urlsafe(16)
    verifier = OIDCClient.new_login_request().code_verifier
    # exactly what the middleware sends at a callback, but with a made-up code
    body, auth = token_request(config, "authorization_code", ctx.metadata.token_endpoint, code=code,
                               redirect_uri=config.redirect_uri,
                               code_verifier=verifier)
    method = config.token_endpoint_auth_method
    try:
        status, document = ctx.http.post_form(ctx.metadata.token_endpoint, "token", body, auth=auth)
    except ProviderError as exc:
        yield FAIL, f"the token endpoint did not answer usably: {describe_error(exc)}"
        return
    error = str(document.get("error", "")) if isinstance(document, dict) else ""
    said = provider_words(document)
    if error == "invalid_client" or (status == 401 and error != "invalid_grant"):
        yield FAIL, (f"client id or secret rejected by the token endpoint ({method}; HTTP {status}{said}): "
                     "check client_id, client_secret and token_endpoint_auth_method"
                     + (" (and client_assertion_key/kid: the registered key?)" if method == "private_key_jwt" else ""))
    elif error == "unauthorized_client":
        yield FAIL, (f"the client may not use the authorization code grant (unauthorized_client{said}): "
                     "enable it for this application at the provider")
    elif error:
        yield OK, (f"client {'credentials' if method in client_auth.JWT_METHODS else 'id and secret'} accepted "
                   f"({method}; a made-up code was refused with {error}, as expected)")
    elif status >= 500:
        yield FAIL, f"the token endpoint answered HTTP {status}"
    elif status == 200:
        yield WARN, "the token endpoint accepted a made-up authorization code: is this the right provider?"
    else:
        yield WARN, f"the token endpoint answered HTTP {status} without an OAuth error: cannot tell"


def check_client_authentication(ctx: Context) -> Iterator[Finding]:
    """The client assertion's key and algorithm (JWT methods), against what the provider advertises."""
    config, document = ctx.config, ctx.document
    method = config.token_endpoint_auth_method
    algorithm = client_auth.signing_algorithm(config)
    if algorithm is None:
        yield OK, f"{method}: the client secret authenticates the client (no assertion)"
        return
    if method == "private_key_jwt":
        key = client_auth.assertion_key(config)
        size = getattr(key.key, "key_size", 0)
        kind = "RSA" if algorithm.startswith(("RS", "PS")) else "EC P-256"
        yield OK, (f"client_assertion_key {config.client_assertion_key}: {kind} private key ({size} bits), "
                   f"kid {key.kid!r}, signs {algorithm}; register its public key at the provider")
        problem = client_auth.key_file_mode_problem(config.client_assertion_key)
        if problem:
            yield WARN, f"client_assertion_key {problem}: make it readable by this user only (chmod 600)"
    advertised = document.get("token_endpoint_auth_signing_alg_values_supported")
    if not isinstance(advertised, list):
        yield OK, f"{method} signs {algorithm} (the provider does not list token_endpoint_auth_signing_alg_values)"
    elif algorithm in advertised:
        yield OK, f"{method} signs {algorithm}, among the provider's token_endpoint_auth_signing_alg_values_supported"
    else:
        yield FAIL, (f"{method} signs {algorithm}, which is not among the provider's "
                     f"token_endpoint_auth_signing_alg_values_supported ({names(advertised)})"
                     + ("; set client_assertion_algorithm" if method == "private_key_jwt" else ""))
    yield OK, (f"client assertions: aud = {config.client_assertion_audience} "
               f"({config.issuer_url if config.client_assertion_audience == 'issuer' else 'the endpoint URL'}), "
               f"exp {client_auth.ASSERTION_LIFETIME} s, a fresh jti each")


def check_pushed_authorization(ctx: Context) -> Iterator[Finding]:
    """PAR (RFC 9126): ``pushed_authorization`` against discovery, and one test push when it will be used."""
    config = ctx.config
    assert ctx.metadata is not None
    endpoint = ctx.metadata.pushed_authorization_request_endpoint
    required = ctx.metadata.require_pushed_authorization_requests
    mode = config.pushed_authorization
    if mode == "off" or endpoint is None:
        if required:
            yield FAIL, ("the provider requires pushed authorization requests (require_pushed_authorization_requests) "
                         + ("but pushed_authorization is off" if mode == "off" else "but advertises no endpoint")
                         + ": every sign-in fails with par_required")
        elif mode == "required":
            yield FAIL, ("pushed_authorization is required but discovery advertises no "
                         "pushed_authorization_request_endpoint: every sign-in fails with par_unavailable")
        else:
            offered = f" (the provider offers {endpoint})" if endpoint else " (the provider offers none)"
            yield OK, f"pushed_authorization {mode}: authorization parameters travel in the browser's URL{offered}"
        return
    client = OIDCClient(config, http=ctx.http)
    try:  # exactly the middleware's path: build the parameters, push them with client authentication
        url = client.authorization_url(OIDCClient.new_login_request(), prompt=None, connection=None)
    except ProviderError as exc:
        if isinstance(exc, SigningAlgorithmMismatch):  # reported by "signing keys"; no push was tried
            yield INFO, "no test push: no ID token could be accepted (see signing keys)"
        elif isinstance(exc, ParFailed):  # refused: most often a credential or redirect_uri the checks above name
            yield WARN, (f"the provider refused a test push to {endpoint} ({exc.detail}): sign-ins fail with "
                         f"par_failed; check that {config.redirect_uri} is a registered redirect_uri, "
                         "and the client credentials")
        else:
            yield FAIL, f"pushing a test authorization request to {endpoint} failed: {describe_error(exc)}"
        return
    yield OK, (f"pushed authorization requests ({mode}{', required by the provider' if required else ''}): a test "
               f"push to {endpoint} was answered with a request_uri; the browser carries only client_id and it "
               f"({len(url)} characters)")


def check_registration_urls(ctx: Context) -> Iterator[Finding]:
    """The URLs to register at the provider for this application."""
    config = ctx.config
    urls = config.base_urls
    if len(urls) > 1:
        yield INFO, (f"base_url lists {len(urls)} origins: each request uses the one matching its Host, any other "
                     f"Host the first ({urls[0]}); register every URL below for each origin")
    for url in config.redirect_uris:
        yield INFO, f"Allowed Callback URL (redirect_uri): {url}"
    if config.response_mode == "form_post":
        yield INFO, (f"response_mode form_post: the callback {config.callback_path} takes the provider's POST "
                     f"(body read up to max_request_body {config.max_request_body} bytes); a GET is refused")
    if config.provider_logout:
        for url in urls:
            yield INFO, f"Allowed Logout URL (post_logout_redirect_uri): {url}/"
    if config.backchannel_logout_path:
        yield INFO, (f"Back-Channel Logout URI: {urls[0]}{config.backchannel_logout_path} (its POST body is "
                     f"read up to max_request_body {config.max_request_body} bytes; larger or chunked bodies get 413)")
    yield INFO, f"Initiate Login URI (SSO entry point): {urls[0]}{config.sso_path}"


def check_authorize_params(ctx: Context) -> Iterator[Finding]:
    """What sign-ins add to the authorization request, and what the organization check needs."""
    config = ctx.config
    if config.authorize_params:
        yield INFO, f"authorize_params sent on every sign-in: {names([name for name, _ in config.authorize_params])}"
    yield INFO, f"forward_params passed through from /auth/login and /auth/sso: {names(config.forward_params)}"
    if "scope" in config.forward_params:
        yield WARN, "forward_params lists scope: any link can add scopes (e.g. offline_access) to a sign-in"
    hook = config.authorize_params_hook
    if hook is not None:
        yield INFO, f"authorize_params_hook: {getattr(hook, '__module__', '?')}:{getattr(hook, '__qualname__', hook)}"
    if not config.organization:
        yield INFO, ("organization not set: invitation links (/auth/login?invitation=...&organization=...) are "
                     "checked against their organization; other sign-ins accept whatever org_id the token has "
                     "(sso.organization)")
        return
    claim = "org_id" if config.organization.startswith("org_") else "org_name"
    yield OK, f"organization {config.organization}: every sign-in asks for it and its ID token must carry {claim}"
    if claim == "org_name":
        yield WARN, ("organization is a name: Auth0 puts org_name in ID tokens only with 'Use organization names "
                     "in Authentication API' on, else every sign-in ends in invalid_organization; an org_... id "
                     "is safer")
    if not config.is_auth0:
        yield WARN, "organization is an Auth0 feature: this provider must put org_id/org_name in its ID tokens"
