"""Form data kept across a sign-in (``preserve_post``): what is kept, and the page that sends it back.

Without this, a user whose session ended while they typed a long form loses it: the
POST is answered 401 (it is no page load that could be redirected), or -- in other
middlewares -- redirected to sign in and replayed as a GET.  With a path under
``preserve_post``, a form POST there without a valid session is kept and the browser
goes to sign in at once (the same sign-in a GET to a protected path starts, with the
step-up the path's access rules ask for); after the callback, instead of a redirect,
the browser gets :func:`resubmit_page`: a small page whose form POSTs the same fields,
in the same order, to the same path and query, submitted by a script (or by its
button without JavaScript), exactly once.

What is kept (:meth:`PreservePost.read`, else a 4xx page saying the form was not kept,
never a silent loss): a top-level form submission (``Sec-Fetch-Mode: navigate``, or
without Fetch metadata an ``Accept: text/html`` request that is not XHR) from this
site's own pages (:func:`~sso_middleware._wsgi.same_origin.foreign_origin`: an ``Origin``
that is one of ``base_url``'s, ``Sec-Fetch-Site: same-origin`` when sent), of
``application/x-www-form-urlencoded`` UTF-8, with a declared ``Content-Length`` of at
most ``preserve_post_max_body``, at most :data:`MAX_FIELDS` fields, every name and value
one a browser form sends back unchanged.  Where it is kept:
:mod:`sso_middleware._session.preserved_posts`.

Security caveats:

* Cross-site POSTs are never kept.  A session cookie is ``SameSite=Lax``, so *every*
  cross-site POST arrives without a session; keeping one would turn a forged form into a
  same-origin POST carrying the user's fresh session after a silent sign-in (a CSRF
  laundry).  The re-POST is same-origin and initiated by our page: an application that
  relies on ``Origin``/``Sec-Fetch-Site``/SameSite alone for CSRF protection accepts it,
  which is why only same-origin POSTs are kept.  The application's own CSRF token
  travels in the form as typed and is checked by the application as usual.
* The page's values are HTML-escaped; its action is the original path and query as a
  target :func:`~sso_middleware._policy.redirects.checked_target` accepted, below this
  application's ``base_url``.  Its script is allowed by a CSP hash (no inline script
  otherwise, no other source), it cannot be framed, and its ``Referer`` is the origin only
  (the callback URL carried the spent code).
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
from collections.abc import Sequence
from typing import Any, Optional

from webob import Response

from .._config.settings import SSOConfig
from .._policy.redirects import checked_target
from .._policy.rules import AccessRule, matching
from .._session.preserved_posts import Fields, PostRecords
from ..errors import (
    PreservePostCrossSite,
    PreservePostLengthRequired,
    PreservePostRefused,
    PreservePostTooLarge,
    PreservePostUnreadable,
    PreservePostUnsupported,
)
from .bodies import TOO_LARGE, UNSIZED, UNSUPPORTED, BodyError, read_form_fields
from .pages import no_store
from .same_origin import foreign_origin

log = logging.getLogger("sso_middleware")

__all__ = ["MAX_FIELDS", "PreservePost", "resubmit_page", "sendable"]

#: Most fields one kept form may have (PHP's ``max_input_vars`` default: forms beyond it are rare).
MAX_FIELDS = 1000
#: The page of a body :func:`~sso_middleware._wsgi.bodies.read_form_fields` refused, by what was wrong.
_REFUSALS: dict[str, type[PreservePostRefused]] = {
    TOO_LARGE: PreservePostTooLarge,  # 413
    UNSIZED: PreservePostLengthRequired,  # 411
    UNSUPPORTED: PreservePostUnsupported,  # 415
}
#: The page's only script; allowed by its hash.  ``HTMLFormElement.prototype.submit``: a field named
#: ``submit`` would shadow the form's own method.
_SCRIPT = "HTMLFormElement.prototype.submit.call(document.forms[0]);"
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
#: No ``form-action``: browsers enforce it on the redirects that follow the POST, and an application
#: may answer a form with a redirect to another origin (our action is fixed, and escaped, anyway).
_CSP = f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; frame-ancestors 'none'"


class PreservePost:
    """Which POSTs ``preserve_post`` covers, reading one, and keeping it for the sign-in."""

    def __init__(self, config: SSOConfig, records: PostRecords) -> None:
        self.config = config
        self.records = records
        # The same prefix matcher as protected_paths and the access rules (both readings of the path).
        self._rules = tuple(AccessRule(path=prefix) for prefix in config.preserve_post)

    def covers(self, environ: dict[str, Any]) -> bool:
        """True for a top-level form submission (POST) to a ``preserve_post`` path.

        A POST from a script (``fetch``, XHR) is no such submission: it keeps its 401.
        """
        if not self._rules or environ.get("REQUEST_METHOD") != "POST":
            return False
        if not matching(self._rules, environ.get("PATH_INFO", "")):
            return False
        mode, dest = environ.get("HTTP_SEC_FETCH_MODE"), environ.get("HTTP_SEC_FETCH_DEST")
        if mode is not None or dest is not None:
            return mode == "navigate" and dest in (None, "document")
        return not environ.get("HTTP_X_REQUESTED_WITH") and "text/html" in environ.get("HTTP_ACCEPT", "")

    def read(self, environ: dict[str, Any]) -> Fields:
        """The POST's fields, if they may be kept; else a :class:`~sso_middleware.errors.PreservePostRefused`.

        The checks that need no body come first; the body is read (at most its declared
        length) only when every one of them passed.
        """
        foreign = foreign_origin(environ, self.config.origins)
        if foreign is not None:
            raise PreservePostCrossSite(f"not a same-origin form submission: {foreign}")
        try:
            fields = read_form_fields(environ, self.config.preserve_post_max_body, MAX_FIELDS)
        except BodyError as refused:
            raise _REFUSALS.get(refused.kind, PreservePostUnreadable)(refused.reason) from None
        for name, value in fields:
            if not name or not sendable(name) or not sendable(value) or (
                name.lower() == "_charset_" and value != "UTF-8"
            ):
                raise PreservePostUnreadable("a field a browser form cannot send back unchanged")
        return fields

    def keep(self, environ: dict[str, Any], target: str, now: float, sub: Optional[str] = None) -> str:
        """Read and store the POST to ``target`` (a login target); the reference for the sign-in's transaction.

        ``sub``: the user whose session ended, when known (the form goes back to that user only).
        """
        if checked_target(target, self.config.origin, ()) is None:
            raise PreservePostUnreadable("the form's address is not one a sign-in may return to")
        fields = self.read(environ)
        reference = self.records.keep(fields, target, now, sub)
        log.info("sso: kept a form of %d fields for %r across the sign-in", len(fields), target[:200])
        return reference


def sendable(text: str) -> bool:
    """Whether a browser form sends ``text`` back exactly as it is (a name or a value).

    Forms send line breaks as CRLF (a lone CR or LF would become one) and an HTML page
    cannot hold U+0000; every other character survives our page's escaping.
    """
    return "\x00" not in text and "\r" not in text.replace("\r\n", "") and "\n" not in text.replace("\r\n", "")


def resubmit_page(action: str, fields: Sequence[tuple[str, str]]) -> Response:
    """The page that POSTs ``fields`` to ``action`` (an absolute URL of this application) once.

    Every value is HTML-escaped, and CR/LF become character references (the HTML parser
    would turn a literal CR into LF).  The button sends the form without JavaScript.
    """
    inputs = "\n".join(f'<input type="hidden" name="{_attribute(name)}" value="{_attribute(value)}">'
                       for name, value in fields)
    heading = "Sending your form again"
    body = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{heading}</title></head>\n<body>\n"
        f'<form method="post" action="{_attribute(action)}" accept-charset="UTF-8" '
        'enctype="application/x-www-form-urlencoded">\n'
        f"{inputs}\n"
        f"<h1>{heading}</h1>\n"
        "<p>You are signed in again. The form you filled in before is being sent now.</p>\n"
        "<noscript><p>JavaScript is off: press the button to send it.</p></noscript>\n"
        '<p><button type="submit">Send the form</button></p>\n'
        "</form>\n"
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
    response = Response(body=body.encode("utf-8"), status=200, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # The Referer is the origin only (the callback URL held the code); never "no-referrer", which
    # makes a POST's Origin header "null" and fails the application's own Origin check.
    response.headers["Referrer-Policy"] = "strict-origin"
    return no_store(response)


def _attribute(text: str) -> str:
    """``text`` inside a double-quoted HTML attribute: escaped, line breaks as character references."""
    return html.escape(text, quote=True).replace("\r", "&#13;").replace("\n", "&#10;")
