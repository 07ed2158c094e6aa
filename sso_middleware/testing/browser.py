"""Driving the development provider's pages like a browser: sign in, cancel, confirm a logout.

:class:`ProviderBrowser` is the part of :class:`~.devprovider.DevProvider` that walks a
``requests.Session`` (which keeps the cookies) through the provider's redirects and forms:
it follows redirects one at a time, fills the login form, submits the self-submitting
pages a browser with JavaScript would, and stops at the first redirect that leaves the
provider, so a test sees exactly what the provider sent back to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import requests

from .accounts import DevUser
from .errors import DevProviderError
from .forms import auto_submit_form, form_by_id, forms, frames_and_links

__all__ = ["ProviderBrowser"]

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class ProviderBrowser:
    """Browser-like flows through a provider at ``issuer`` whose users are ``users``."""

    users: Mapping[str, DevUser]

    @property
    def issuer(self) -> str:
        """The provider's issuer identifier (its origin decides what "at the provider" means)."""
        raise NotImplementedError

    def is_provider_url(self, url: str) -> bool:
        """Whether ``url`` points at the provider's origin."""
        parts, own = urlsplit(url), urlsplit(self.issuer)
        return (parts.scheme, parts.netloc.lower()) == (own.scheme, own.netloc.lower())

    def login(
        self,
        http_session: requests.Session,
        user: str | DevUser = "alice",
        start_url: str | None = None,
        *,
        response: requests.Response | None = None,
        password: str | None = None,
        otp: str | None = None,
        follow_to_client: bool = False,
        max_steps: int = 30,
        timeout: float = 10.0,
    ) -> requests.Response:
        """Sign ``user`` in like a browser would, and return where it ended.

        Starts with ``GET start_url`` (an authorization URL, or an application URL that
        redirects to the provider) — or, without ``start_url``, continues from
        ``response`` (e.g. a redirect or a login page already fetched with the same
        session). Redirects are followed one by one with ``http_session`` (which keeps the
        cookies). On the provider's login form the user's credentials are submitted once
        (``password`` overrides the known one, for wrong-password tests). ``otp`` is sent
        as the form's one-time code when given: ``DEV_OTP`` makes it a multi-factor login
        (acr ``ACR_MFA``, amr ``["pwd", "otp"]``), without it the login is password-only
        (acr ``ACR_PWD``), any other non-empty code fails like a wrong password. The form
        is also shown when the session's acr is not among the request's ``acr_values`` or
        its ``auth_time`` is older than ``max_age``.

        Returns the first redirect that leaves the provider's origin after the provider
        has been visited — usually the 303 to the client's ``redirect_uri`` carrying
        ``code``/``state``/``iss`` or ``error`` — without following it. With
        ``follow_to_client=True`` that redirect is followed too (to a real HTTP
        application) until a non-redirect response. If the credentials are wrong the
        returned response is the login form again (200, ``id="error"`` in it). Silent
        flows (an existing provider session, ``prompt=none``) never show the form.
        The provider's self-submitting pages are submitted like a browser with JavaScript
        would (signing in as another user than the session's first ends the old provider
        session that way); a ``response_mode=form_post`` page addressed to the client is
        returned as is unless ``follow_to_client``.
        """
        account = user if isinstance(user, DevUser) else self.users.get(user)
        username = user.username if isinstance(user, DevUser) else user
        secret = password if password is not None else (account.password if account else None)
        if secret is None:
            raise DevProviderError(f"unknown user {username!r}: pass password=")
        if start_url is not None:
            current = http_session.get(start_url, allow_redirects=False, timeout=timeout)
        elif response is not None:
            current = response
        else:
            raise DevProviderError("login() needs start_url or response")
        submitted = False
        for _ in range(max_steps):
            if current.status_code in _REDIRECT_CODES and "Location" in current.headers:
                if self._left_provider(current) and not follow_to_client:
                    return current
                target = urljoin(current.url, current.headers["Location"])
                current = http_session.get(target, allow_redirects=False, timeout=timeout)
                continue
            if not self.is_provider_url(current.url):
                return current
            auto = auto_submit_form(current)
            if auto is not None:  # e.g. the provider ending the old session on an account switch
                action = urljoin(current.url, auto.attrs.get("action", ""))
                if not self.is_provider_url(action) and not follow_to_client:
                    return current  # response_mode=form_post back to the client
                current = http_session.post(action, data=auto.fields, allow_redirects=False, timeout=timeout)
                continue
            form = form_by_id(current, "login-form")
            if form is None or submitted:
                return current
            data = {"login": username, "password": secret}
            if otp is not None:
                data["otp"] = otp
            current = http_session.post(
                urljoin(current.url, form.attrs.get("action", "")),
                data=data,
                allow_redirects=False,
                timeout=timeout,
            )
            submitted = True
        raise DevProviderError(f"login() did not finish within {max_steps} steps (at {current.url})")

    def cancel_login(
        self, http_session: requests.Session, response: requests.Response, *, timeout: float = 10.0
    ) -> requests.Response:
        """Press "Cancel" on a login form ``response``: returns the provider's redirect to
        the client carrying ``error=access_denied`` (not followed)."""
        form = form_by_id(response, "abort-form")
        if form is None:
            raise DevProviderError(f"no login form to cancel at {response.url}")
        current = http_session.post(
            urljoin(response.url, form.attrs.get("action", "")), allow_redirects=False, timeout=timeout
        )
        while current.status_code in _REDIRECT_CODES and not self._left_provider(current):
            current = http_session.get(
                urljoin(current.url, current.headers["Location"]), allow_redirects=False, timeout=timeout
            )
        return current

    def logout_confirm(
        self,
        http_session: requests.Session,
        response: requests.Response | str,
        *,
        logout: bool = True,
        follow_to_client: bool = False,
        timeout: float = 10.0,
    ) -> requests.Response:
        """Answer the provider's RP-initiated logout confirmation like a browser.

        ``response`` is the logout page, a redirect leading to it (e.g. the application's
        logout response), or the end-session URL itself. Posts the form's hidden ``xsrf``
        plus ``logout=yes`` ("Yes, sign me out": ends the provider session and sends
        back-channel logouts) or, with ``logout=False``, without it ("No, stay signed
        in": only this client's authorization is dropped). Returns the first redirect
        leaving the provider (to ``post_logout_redirect_uri``, with ``state``), or the
        provider's own "signed out" page when no redirect URI was given.

        When clients of the session registered a ``frontchannel_logout_uri``, the provider answers
        with its front-channel logout page instead: its frames are loaded like a cross-site iframe
        (:meth:`load_frontchannel_frames`: no cookies) and the page is returned -- or, with
        ``follow_to_client``, its ``Continue`` link (where its script goes next) is followed.
        """
        if isinstance(response, str):
            current = http_session.get(response, allow_redirects=False, timeout=timeout)
        else:
            current = response
        for _ in range(30):
            if current.status_code in _REDIRECT_CODES and "Location" in current.headers:
                current = self._follow(http_session, current, True, timeout)
                continue
            break
        form = form_by_id(current, "op.logoutForm")
        if form is None:  # no session at the provider: an auto-submitting form
            form = next(
                (f for f in forms(current) if f.attrs.get("action", "").endswith("/logout/confirm")),
                None,
            )
        if form is None:
            raise DevProviderError(f"no logout confirmation form at {current.url} (HTTP {current.status_code})")
        data = dict(form.fields)
        data.pop("logout", None)
        if logout:
            data["logout"] = "yes"
        current = http_session.post(
            urljoin(current.url, form.attrs.get("action", "")), data=data, allow_redirects=False, timeout=timeout
        )
        for _ in range(30):
            if current.status_code not in _REDIRECT_CODES or "Location" not in current.headers:
                frames, links = frames_and_links(current)
                if not frames or not self.is_provider_url(current.url):
                    return current
                self.load_frontchannel_frames(current, timeout=timeout)
                if not follow_to_client or "frontchannel-continue" not in links:
                    return current
                target = urljoin(current.url, links["frontchannel-continue"])
                current = http_session.get(target, allow_redirects=False, timeout=timeout)
                continue
            if self._left_provider(current) and not follow_to_client:
                return current
            current = self._follow(http_session, current, True, timeout)
        return current

    def load_frontchannel_frames(self, page: requests.Response, *, timeout: float = 10.0) -> list[requests.Response]:
        """GET each ``<iframe src>`` of the provider's front-channel logout ``page``; their answers.

        Without any cookie: a browser sends none of an application's ``SameSite=Lax`` cookies with
        an iframe on another site's page, so what ends the application's session here is the
        ``iss``/``sid`` the provider put into the URL. (Real browsers are in the Chromium tests.)
        """
        frames, _ = frames_and_links(page)
        with requests.Session() as cross_site:
            cross_site.trust_env = False
            return [cross_site.get(urljoin(page.url, src), allow_redirects=False, timeout=timeout) for src in frames]

    def _left_provider(self, response: requests.Response) -> bool:
        target = urljoin(response.url, response.headers.get("Location", ""))
        return self.is_provider_url(response.url) and not self.is_provider_url(target)

    def _follow(
        self, http_session: requests.Session, response: requests.Response, follow_out: bool, timeout: float
    ) -> requests.Response:
        """Follow one redirect unless it leaves the provider and ``follow_out`` is false."""
        if self._left_provider(response) and not follow_out:
            return response
        target = urljoin(response.url, response.headers["Location"])
        return http_session.get(target, allow_redirects=False, timeout=timeout)

