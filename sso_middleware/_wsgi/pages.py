"""The few responses the middleware writes itself: the failure page, the 401/403 answers.

Everything echoed back is HTML-escaped, and messages come from the error
catalogue (:mod:`sso_middleware.errors`), never from provider-supplied free text.
"""

from __future__ import annotations

import html
import json
from typing import Optional

from webob import Response

from ..errors import describe

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f5f6f8;color:#1d2330;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}}
main{{background:#fff;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem 2.5rem;max-width:32rem}}
h1{{font-size:1.3rem;margin:0 0 .8rem}} code{{background:#eef0f4;padding:.1rem .35rem;border-radius:4px}}
a{{color:#2454c5}}
</style></head>
<body><main>
<h1>{title}</h1>
<p>{message}</p>
<p>Error code: <code>{code}</code></p>
<p><a href="{home}">Back to the start page</a></p>
</main></body></html>
"""


def no_store(response: Response) -> Response:
    """Mark an authentication response as never cacheable."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def failure_page(code: str, home: str) -> Response:
    """The failure page for an error code: status and message by code, all text escaped."""
    status, message, shown_code = describe(code)
    title = "Sign-in service unavailable" if status >= 500 else "Signing in did not work"
    body = _PAGE.format(
        title=html.escape(title),
        message=html.escape(message),
        code=html.escape(shown_code),
        home=html.escape(home, quote=True),
    )
    response = Response(body=body.encode(), status=status, content_type="text/html", charset="utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return no_store(response)


def login_required(login_url: str, realm: str) -> Response:
    """401 for a protected path asked for by something that is not a top-level page load."""
    body = json.dumps({"error": "login_required", "login_url": login_url})
    response = Response(body=body.encode(), status=401, content_type="application/json", charset=None)
    response.headers["WWW-Authenticate"] = f'OpenIDConnect realm="{realm}", error="login_required"'
    return no_store(response)


def forbidden(home: str, as_json: bool) -> Response:
    """403 for a signed-in user whom the access rules do not let in (a page, or JSON for API calls).

    Never a redirect to sign in: the user is signed in, and signing in again would loop.
    """
    if as_json:
        body = json.dumps({"error": "forbidden"}).encode()
        response = Response(body=body, status=403, content_type="application/json", charset=None)
    else:
        page = _PAGE.format(
            title="Access denied",
            message=html.escape("You are signed in, but your account may not open this page."),
            code="forbidden",
            home=html.escape(home, quote=True),
        )
        response = Response(body=page.encode(), status=403, content_type="text/html", charset="utf-8")
        response.headers["X-Content-Type-Options"] = "nosniff"
    return no_store(response)


def step_up_required(login_url: str, realm: str, max_age: Optional[int], acr_values: tuple[str, ...]) -> Response:
    """401 asking an API client to have the user authenticate again (modelled on RFC 9470's challenge)."""
    body = json.dumps({"error": "insufficient_user_authentication", "login_url": login_url})
    response = Response(body=body.encode(), status=401, content_type="application/json", charset=None)
    challenge = f'OpenIDConnect realm="{realm}", error="insufficient_user_authentication"'
    if acr_values:
        challenge += f', acr_values="{_quoted(" ".join(acr_values))}"'
    if max_age is not None:
        challenge += f', max_age="{max_age}"'
    response.headers["WWW-Authenticate"] = challenge
    return no_store(response)


def _quoted(text: str) -> str:
    """The inside of an HTTP quoted-string (RFC 9110 section 5.6.4)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def server_error() -> Response:
    """A bare 500 page for a bug in the middleware itself (logged, never shown)."""
    return no_store(Response("Internal error in the sign-in middleware.", status=500, content_type="text/plain"))
