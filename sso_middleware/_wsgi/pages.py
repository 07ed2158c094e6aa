"""The few responses the middleware writes itself: the failure page, the 401/403 answers.

Everything echoed back is HTML-escaped, and messages come from the error
catalogue (:mod:`sso_middleware.errors`), never from provider-supplied free text.

The failure and 403 pages speak the browser's language: ``Accept-Language`` is
negotiated (q-values, ranges such as ``de-CH``, ``*`` and ``q=0`` by WebOb's RFC 4647
lookup) among :data:`~sso_middleware._translations.LANGUAGES`, English by default; the
answer carries ``Content-Language`` and ``Vary: Accept-Language``.  A code without a
text in the chosen language is shown in English, the whole page.  With
``failure_page_template`` the operator's HTML (:mod:`sso_middleware._config.page_template`)
replaces the built-in page; the headers stay the same.

Security caveat: every value put into a page -- title, message, code, start-page URL --
is escaped for HTML text and attributes, and placeholders are filled in one pass, so a
value can never add markup or another placeholder.  The template itself is trusted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any, Optional

from webob import Response
from webob.acceptparse import create_accept_language_header

from .._config.page_template import PLACEHOLDER, PageTemplate
from .._translations import CHROME, LANGUAGES, MESSAGES, OTHER_REASON
from ..errors import ProviderRefused, describe

#: The built-in page: the same placeholders as a template, plus its two labels.
_PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f5f6f8;color:#1d2330;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem 2.5rem;max-width:32rem}
h1{font-size:1.3rem;margin:0 0 .8rem} code{background:#eef0f4;padding:.1rem .35rem;border-radius:4px}
a{color:#2454c5}
</style></head>
<body><main>
<h1>{title}</h1>
<p>{message}</p>
<p>{code_label}: <code>{code}</code></p>
<p><a href="{home}">{home_label}</a></p>
</main></body></html>
"""

#: The 403 page's message (it has no failure class: the user is signed in, only not allowed).
FORBIDDEN_MESSAGE = "You are signed in, but your account may not open this page."


def no_store(response: Response) -> Response:
    """Mark an authentication response as never cacheable."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def page_language(environ: Optional[Mapping[str, Any]]) -> str:
    """The language of :data:`LANGUAGES` the request's ``Accept-Language`` prefers (the default when none fits).

    Any header value is accepted: an unparsable one counts as none (WebOb's invalid-header object).
    """
    value = environ.get("HTTP_ACCEPT_LANGUAGE") if environ is not None else None
    if not value or not isinstance(value, str):
        return LANGUAGES[0]
    found = create_accept_language_header(value).lookup(language_tags=list(LANGUAGES), default_tag=LANGUAGES[0])
    return found if found in LANGUAGES else LANGUAGES[0]


def failure_text(code: str, lang: str) -> tuple[int, str, str, str, str]:
    """Status, language, title, message and shown code of a failure code's page in ``lang`` (or English)."""
    status, message, shown = describe(code)
    key = shown.partition(":")[0]  # provider_error:<error> is one text, with the error as its detail
    translated = MESSAGES.get(lang, {}).get(key)
    if translated is None:
        lang = LANGUAGES[0]
    elif key == ProviderRefused.code:
        detail = shown.partition(":")[2].replace("_", " ") or OTHER_REASON[lang]
        message = translated.replace("{detail}", detail)  # an OAuth error name, or the fixed "other reason"
    else:
        message = translated
    title = CHROME[lang]["unavailable" if status >= 500 else "failed"]
    return status, lang, title, message, shown


def render(template: Optional[PageTemplate], lang: str, title: str, message: str, code: str, home: str) -> str:
    """The page's HTML: each value escaped, the placeholders filled in one pass."""
    values = {
        "lang": html.escape(lang, quote=True),
        "title": html.escape(title, quote=True),
        "message": html.escape(message, quote=True),
        "code": html.escape(code, quote=True),
        "home": html.escape(home, quote=True),
    }
    if template is None:
        labels = CHROME[lang]
        values.update(code_label=html.escape(labels["code_label"]), home_label=html.escape(labels["home_label"]))
    text = template.text if template is not None else _PAGE
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def _html(body: str, status: int, lang: str) -> Response:
    response = Response(body=body.encode(), status=status, content_type="text/html", charset="utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Accept-Language"
    return no_store(response)


def failure_page(code: str, home: str, environ: Optional[Mapping[str, Any]] = None,
                 template: Optional[PageTemplate] = None) -> Response:
    """The failure page for an error code: status and message by code, in the request's language, all text escaped."""
    status, lang, title, message, shown = failure_text(code, page_language(environ))
    return _html(render(template, lang, title, message, shown, home), status, lang)


def login_required(login_url: str, realm: str) -> Response:
    """401 for a protected path asked for by something that is not a top-level page load."""
    body = json.dumps({"error": "login_required", "login_url": login_url})
    response = Response(body=body.encode(), status=401, content_type="application/json", charset=None)
    response.headers["WWW-Authenticate"] = f'OpenIDConnect realm="{realm}", error="login_required"'
    return no_store(response)


def forbidden(home: str, as_json: bool, environ: Optional[Mapping[str, Any]] = None,
              template: Optional[PageTemplate] = None) -> Response:
    """403 for a signed-in user whom the access rules do not let in (a page, or JSON for API calls).

    Never a redirect to sign in: the user is signed in, and signing in again would loop.
    """
    if as_json:
        body = json.dumps({"error": "forbidden"}).encode()
        return no_store(Response(body=body, status=403, content_type="application/json", charset=None))
    lang = page_language(environ)
    message = FORBIDDEN_MESSAGE if lang == LANGUAGES[0] else MESSAGES[lang].get("forbidden")
    if message is None:
        lang, message = LANGUAGES[0], FORBIDDEN_MESSAGE
    return _html(render(template, lang, CHROME[lang]["forbidden"], message, "forbidden", home), 403, lang)


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
