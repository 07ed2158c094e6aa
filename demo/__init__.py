"""The demo's three applications, one module each, started together by ``demo_app.py``.

* :mod:`demo.spa` -- **App 1**, a single-page app (static files in ``demo/spa/``) signing in
  in the browser with ``oidc-client-ts`` as a public client with PKCE;
* :mod:`demo.app2` -- **App 2**, a Pyramid "regular web app" wrapped by ``SSOMiddleware``,
  with a bearer-token JSON API the SPA calls (:mod:`demo.cors` lets App 1's origin in);
* :mod:`demo.app3` -- **App 3**, the legacy intranet app (Bottle), wrapped too and
  registered for back-channel logout: it shows single logout.

:mod:`demo.pages` holds the look they share. Not part of the installed package.
"""
