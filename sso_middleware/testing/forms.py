"""Reading the development provider's HTML pages: their forms and hidden fields, like a browser.

Only what the provider's login, consent-free logout and self-submitting (``form_post``)
pages need: ``<form>`` attributes and the named ``<input>`` values a submit would send.
No script runs; a self-submitting page is recognised by its ``document.forms[0].submit()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import requests


@dataclass
class Form:
    """One ``<form>``: its attributes and the values of its named inputs (what a submit sends)."""

    attrs: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(values)
            self.forms.append(self._current)
        elif (
            tag == "input"
            and self._current is not None
            and values.get("name")
            and values.get("type", "text") not in ("submit", "button", "checkbox", "radio")
        ):
            self._current.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(response: requests.Response) -> list[Form]:
    """The forms of an HTML ``response`` in document order (none for any other content type)."""
    if "html" not in response.headers.get("Content-Type", ""):
        return []
    parser = _FormParser()
    parser.feed(response.text)
    parser.close()
    return parser.forms


def form_by_id(response: requests.Response, form_id: str) -> Form | None:
    """The form whose ``id`` is ``form_id``, or None."""
    return next((f for f in forms(response) if f.attrs.get("id") == form_id), None)


def auto_submit_form(response: requests.Response) -> Form | None:
    """The form of oidc-provider's self-submitting pages (form_post), if this is one."""
    if "document.forms[0].submit()" not in response.text:
        return None
    found = forms(response)
    if found and found[0].attrs.get("method", "get").lower() == "post":
        return found[0]
    return None



class _FrameParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.frames: list[str] = []
        self.links: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "iframe" and values.get("src"):
            self.frames.append(values["src"])
        elif tag == "a" and values.get("id") and "href" in values:
            self.links[values["id"]] = values["href"]


def frames_and_links(response: requests.Response) -> tuple[list[str], dict[str, str]]:
    """The ``<iframe src>`` URLs of an HTML ``response`` and its links by ``id`` (e.g. the provider's
    front-channel logout page: a frame per application, and ``frontchannel-continue``)."""
    if "html" not in response.headers.get("Content-Type", ""):
        return [], {}
    parser = _FrameParser()
    parser.feed(response.text)
    parser.close()
    return parser.frames, parser.links
