"""The configuration doctor behind ``python -m sso_middleware check`` (or ``sso-middleware check``).

Use it when deploying, or when sign-in does not work: it loads the configuration
exactly as the middleware would get it and checks it against the real provider
and session store before the first user does, printing one line per finding::

    [ OK ] configuration: valid (environment SSO_*); issuer https://tenant.eu.auth0.com/, ...
    [FAIL] discovery: issuer mismatch: the provider announces 'https://t.auth0.com/' but ...

Where things are:

* :mod:`.sources`: where the configuration comes from (``--ini``, ``--settings``,
  ``--env``), and which of its values are secret;
* :mod:`.checks`: the checklist, one module per group of checks (add a check there);
* :mod:`.report`: running the checklist, and printing its lines or JSON;
* :mod:`.cli`: the command's options and exit status;
* :mod:`.wording`: how findings word errors and lists.

Network failures are findings, never tracebacks, and every request is bounded by
``http_timeout`` (``session_store_timeout`` for the store).  Exit status: 0 when no check
failed (warnings allowed), 1 when one did, 2 for usage errors.

Security caveats: the doctor prints no secrets -- neither ``client_secret`` nor
``session_secret`` nor the password of ``session_url`` (``redis://:PW@host`` or
``?password=PW``) or ``http_proxy`` -- and as a last line of defence every printed text goes
through :meth:`~sso_middleware._redaction.Redactor.show`, which masks the configured secret values and any
run of 8 or more characters of one (error messages of libraries quote pieces of values), and
prints non-printable characters escaped (``\\x1b``): discovery values, key ids and other
provider-supplied strings cannot drive the terminal.  PasteDeploy's interpolation errors (a
``%`` in a value) are reported by their type and option name only.  It does send the client
credentials to the provider's token endpoint (with a made-up authorization code, so nothing
is issued) to find out whether they are accepted: run it against the provider you
configured.  The file store probe writes and removes one temporary file (and any folder it
had to create); the memcached probe writes and deletes one short-lived key.
"""
