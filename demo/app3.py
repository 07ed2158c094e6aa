"""App 3 of the demo: the legacy intranet app (Bottle), wrapped by ``SSOMiddleware``.

Every page needs a signed-in user (``protected_paths = /``, as an intranet app's would). It
is registered at the provider with a back-channel logout URI (``backchannel_logout_path``),
so a sign-out at another app that ends the provider session ends App 3's session too: the
provider POSTs a logout token, the middleware validates it and deletes every session of that
``sid`` from the store.

Security caveat: back-channel logout needs a server-side session store (the demo's file
store) and a provider that can reach the app; with the cookie store it reaches only this host.
"""

from __future__ import annotations

import html

import bottle

from sso_middleware import get_userinfo

from .pages import page, user_table

TITLE, SUBTITLE = "App 3", "the legacy intranet app (Bottle)"
#: The seed sentence App 3 shows.
SEED = (
    "<b>One provider session, single logout:</b> the same sign-in reaches the legacy app, and signing "
    "out at App 2 ends it here too, through the provider's back-channel logout."
)


def make_app3(spa_url: str, app2_dashboard_url: str) -> bottle.Bottle:
    """App 3's WSGI app (to be wrapped by ``SSOMiddleware`` with ``/`` protected)."""
    app = bottle.Bottle()
    links = (
        f'<p><a class="button secondary" id="to-app2" href="{html.escape(app2_dashboard_url)}">App 2\'s dashboard'
        f'</a> <a class="button secondary" id="to-spa" href="{html.escape(spa_url)}">The SPA</a></p>'
    )

    @app.get("/")  # type: ignore[untyped-decorator]
    def home() -> str:
        user = get_userinfo(bottle.request.environ)
        if user is None:  # the middleware protects every path; this is defence in depth
            raise bottle.HTTPError(401)
        body = (
            '<h2 id="app3-state">Signed in to the intranet</h2>'
            f"{user_table(user)}"
            '<p class="note">You reached this page through <code>/auth/sso</code>, like App 2: one '
            "<code>prompt=none</code> round trip on the provider session you already had, no password. This app "
            "now has its own session, and the provider knows it is part of your sign-in: when that ends, the "
            "provider tells App 3 over the back channel (<code>POST /auth/backchannel-logout</code>), the "
            "middleware deletes this session from its store, and the next page you open here asks for a login.</p>"
            f"{links}"
        )
        return page("app3", TITLE, SUBTITLE, SEED, body)

    return app
