"""The doctor's checklist (:data:`CHECKS`), one module per group of checks.

* :mod:`.egress`: how provider calls leave (proxy, CA bundle, client certificate);
* :mod:`.provider`: discovery, the clocks, the signing keys, capabilities, endpoints;
* :mod:`.client`: client credentials and authentication, PAR, authorization parameters,
  the URLs to register;
* :mod:`.session`: tokens and access rules, the session cookie, the session store;
* :mod:`.bearer`: bearer tokens on API paths (audience, keys, introspection);
* :mod:`.frontchannel`: front-channel logout (what the provider offers, the URL to register);
* :mod:`.metrics`: metrics and health (prometheus_client, multiprocess mode, the paths);
* :mod:`.preserve_post`: forms kept across a sign-in (paths, bound, store cost);
* :mod:`.sign_in`: the ``on_sign_in`` hook and ``userinfo_claims``, token revocation at sign-out;
* :mod:`.pages`: the failure pages' template and languages, the session endpoint;
* :mod:`.context`: what they share (:class:`Context`, :class:`Check`, the statuses).

To add a check, write a generator ``check_x(ctx)`` yielding ``(status, message)`` in the
module of its group and append a :class:`Check` here, with ``needs_discovery=True`` when it
reads :attr:`Context.metadata`.  A check that raises is reported as one failed line.

Security caveat: a check never yields a secret on purpose; the report masks the
configured secrets and escapes control characters in every line all the same.
"""

from __future__ import annotations

from .bearer import check_bearer
from .client import (
    check_authorize_params,
    check_client_authentication,
    check_client_credentials,
    check_pushed_authorization,
    check_registration_urls,
)
from .context import Check
from .egress import check_egress
from .frontchannel import check_frontchannel_logout
from .metrics import check_metrics
from .pages import check_failure_pages, check_session_endpoint
from .preserve_post import check_preserve_post
from .provider import check_capabilities, check_clock, check_discovery, check_endpoints, check_signing_keys
from .session import check_cookies, check_session_store, check_tokens_and_rules
from .sign_in import check_revocation, check_sign_in_hook

#: The checklist, in order.  Append a :class:`Check` to add one.
CHECKS: list[Check] = [
    Check("outgoing connections", check_egress),
    Check("discovery", check_discovery),
    Check("clock", check_clock, needs_discovery=True),
    Check("signing keys", check_signing_keys, needs_discovery=True),
    Check("provider capabilities", check_capabilities, needs_discovery=True),
    Check("tokens and rules", check_tokens_and_rules),
    Check("bearer tokens", check_bearer),
    Check("authorization parameters", check_authorize_params),
    Check("endpoints", check_endpoints, needs_discovery=True),
    Check("client credentials", check_client_credentials, needs_discovery=True),
    Check("client authentication", check_client_authentication, needs_discovery=True),
    Check("pushed authorization", check_pushed_authorization, needs_discovery=True),
    Check("register at the provider", check_registration_urls),
    Check("front-channel logout", check_frontchannel_logout, needs_discovery=True),
    Check("cookies", check_cookies),
    Check("session store", check_session_store),
    Check("metrics and health", check_metrics),
    Check("preserve post", check_preserve_post),
    Check("sign-in hook", check_sign_in_hook),
    Check("token revocation", check_revocation, needs_discovery=True),
    Check("failure pages", check_failure_pages),
    Check("session endpoint", check_session_endpoint),
]
