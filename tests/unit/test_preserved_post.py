"""preserve_post's parts alone: what is sendable, the resubmit page as a browser parses it, the record, the doctor.

The page is parsed with the standard library's HTML parser (character references decoded as
a browser's tokenizer decodes them in attribute values); random names and values of every
sendable kind must come back unchanged, and nothing in them may open a tag.
"""

from __future__ import annotations

import random
from html.parser import HTMLParser
from typing import Any, Optional

import pytest
from cryptography.fernet import Fernet

from sso_middleware import SSOConfig
from sso_middleware._doctor.checks.preserve_post import check_preserve_post
from sso_middleware._session.preserved_posts import RECORD_PREFIX, PostRecords
from sso_middleware._wsgi.preserved_post import resubmit_page, sendable

from ..custom_backend import DictBackend
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

SETTINGS = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
            "session_secret": "s" * 40, "session_type": "tests.custom_backend:DictBackend",
            "protected_paths": "/app", "preserve_post": "/app/forms"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, Optional[str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(text: str) -> list[tuple[str, dict[str, Optional[str]]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("plain", True, id="plain"),
        pytest.param("a\r\nb\r\n", True, id="crlf"),
        pytest.param("tab\there", True, id="tab"),
        pytest.param("ünïcödé ✓ 𝄞", True, id="unicode"),
        pytest.param("\x01\x7f\x85", True, id="other-controls"),
        pytest.param("a\nb", False, id="lone-lf"),
        pytest.param("a\rb", False, id="lone-cr"),
        pytest.param("a\n\rb", False, id="lf-cr"),
        pytest.param("a\x00", False, id="nul"),
    ],
)
def test_sendable(text: str, ok: bool) -> None:
    assert sendable(text) is ok


def _random_text(rng: random.Random) -> str:
    alphabet = ['"', "'", "<", ">", "&", "&amp;", "&#13;", "\r\n", "\t", " ", "=", "+", "%", "é", "✓", "𝄞",
                "\x01", "\x85", "\u2028", "</script>", "<!--", "]]>", "a", "Z", "0", "submit", "&lt;"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def test_random_fields_come_back_unchanged_and_open_no_tag() -> None:
    rng = random.Random(20261204)
    for _ in range(300):
        fields = [(_random_text(rng) or "n", _random_text(rng)) for _ in range(rng.randint(0, 6))]
        fields = [(name, value) for name, value in fields if sendable(name) and sendable(value)]
        text = resubmit_page(BASE_URL + "/app/forms/x?a=1&b='2'", fields).text
        found = tags(text)
        assert [tag for tag, _attrs in found if tag not in ("input",)] == [
            "html", "head", "meta", "meta", "title", "body", "form", "h1", "p", "noscript", "p", "p", "button",
            "script"]
        assert [(attrs["name"], attrs["value"]) for tag, attrs in found if tag == "input"] == fields
        (form,) = [attrs for tag, attrs in found if tag == "form"]
        assert form["action"] == BASE_URL + "/app/forms/x?a=1&b='2'" and form["method"] == "post"
        assert "\r" not in text


def test_the_page_is_never_cached_and_has_its_headers() -> None:
    response = resubmit_page(BASE_URL + "/x", [("a", "1")])
    assert response.status_int == 200 and response.charset == "utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'sha256-")


@pytest.fixture
def records() -> tuple[PostRecords, DictBackend]:
    config = SSOConfig(**SETTINGS)
    backend = DictBackend(config)
    return PostRecords(config, backend), backend


def test_a_record_is_taken_once(records: tuple[PostRecords, DictBackend]) -> None:
    posts, backend = records
    reference = posts.keep([("a", "1"), ("a", "2")], "/app/forms/x", 1000.0)
    assert reference.startswith(RECORD_PREFIX)
    assert len(backend.records) == 1
    kept = posts.take(reference, "/app/forms/x", 1001.0)
    assert kept is not None and kept.fields == [("a", "1"), ("a", "2")] and kept.sub is None
    assert "a" not in repr(kept).replace("KeptForm", "")  # what the user typed is never in a repr
    assert not backend.records
    assert posts.take(reference, "/app/forms/x", 1001.0) is None


def test_a_record_remembers_whose_session_ended(records: tuple[PostRecords, DictBackend]) -> None:
    posts, _backend = records
    kept = posts.take(posts.keep([("a", "1")], "/app/forms/x", 1000.0, sub="alice"), "/app/forms/x", 1001.0)
    assert kept is not None and kept.sub == "alice"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        pytest.param(lambda ref: ref.split(".")[0] + "." + "A" * 44, "not a key", id="malformed-key"),
        pytest.param(lambda ref: ref.split(".")[0] + "." + Fernet.generate_key().decode(), "another key",
                     id="another-valid-key"),
        pytest.param(lambda ref: ref.split(".")[0] + ".", "no key", id="no-key"),
        pytest.param(lambda ref: "sso-tokens-" + ref.removeprefix(RECORD_PREFIX), "another kind", id="other-prefix"),
        pytest.param(lambda ref: ref + "é", "not ascii", id="non-ascii"),
    ],
)
def test_a_forged_reference_gets_nothing(records: tuple[PostRecords, DictBackend], change: Any, why: str) -> None:
    posts, _backend = records
    reference = posts.keep([("a", "1")], "/app/forms/x", 1000.0)
    assert posts.take(change(reference), "/app/forms/x", 1001.0) is None


def test_an_expired_record_or_another_target_gets_nothing(records: tuple[PostRecords, DictBackend]) -> None:
    posts, backend = records
    reference = posts.keep([("a", "1")], "/app/forms/x", 1000.0)
    assert posts.take(reference, "/app/forms/x", 1000.0 + 600 + 61) is None  # transaction_ttl + margin
    assert not backend.records  # deleted all the same
    reference = posts.keep([("a", "1")], "/app/forms/x", 1000.0)
    assert posts.take(reference, "/app/forms/y", 1001.0) is None
    assert not backend.records


def test_a_record_copied_under_another_id_does_not_open(records: tuple[PostRecords, DictBackend]) -> None:
    """The seal binds the record to its key: a copy under another id is no record."""
    posts, backend = records
    reference = posts.keep([("a", "1")], "/app/forms/x", 1000.0)
    record_id, _, key = reference.partition(".")
    ((stored_key, stored),) = backend.records.items()
    backend.records[stored_key.replace(record_id, RECORD_PREFIX + "copied")] = stored
    assert posts.take(f"{RECORD_PREFIX}copied.{key}", "/app/forms/x", 1001.0) is None


class _Ctx:
    def __init__(self, **settings: Any) -> None:
        self.config = SSOConfig(**{**SETTINGS, **settings})


def test_the_doctor_says_what_is_kept_and_warns_about_cost() -> None:
    assert list(check_preserve_post(_Ctx(preserve_post=""))) == []
    found = list(check_preserve_post(_Ctx()))
    assert found[0][0] == "OK" and "/app/forms" in found[0][1] and "16384 bytes" in found[0][1]
    assert found[-1][0] == "INFO" and "CSRF token" in found[-1][1]
    assert not [status for status, _ in found if status == "WARN"]
    warned = [message for status, message in check_preserve_post(_Ctx(
        protected_paths="/", preserve_post="/", preserve_post_max_body=65537, max_request_body=131072,
        transaction_ttl=60, bearer_paths="/api", bearer_audience="https://api.example")) if status == "WARN"]
    assert len(warned) == 4
    assert any("bearer_paths /api" in line for line in warned)
    assert any("covers every path" in line for line in warned)
    assert any("65537 bytes" in line for line in warned)
    assert any("transaction_ttl 60" in line for line in warned)


def test_the_budget_refuses_unwritten_and_frees_on_take_discard_and_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    from sso_middleware._session import preserved_posts
    from sso_middleware.errors import PreservePostBusy

    monkeypatch.setattr(preserved_posts, "MAX_KEPT_BYTES", 3 * preserved_posts.MIN_RECORD_BYTES)
    config = SSOConfig(**SETTINGS)
    backend = DictBackend(config)
    posts = PostRecords(config, backend)
    kept = [posts.keep([("a", str(n))], "/app/forms/x", 1000.0 + n) for n in range(3)]
    with pytest.raises(PreservePostBusy):
        posts.keep([("a", "3")], "/app/forms/x", 1003.0)
    assert len(backend.records) == 3  # the refused one was never written
    assert posts.take(kept[0], "/app/forms/x", 1004.0) is not None
    kept.append(posts.keep([("a", "4")], "/app/forms/x", 1004.0))  # a taken record's room is free
    posts.discard(kept[1])
    kept.append(posts.keep([("a", "5")], "/app/forms/x", 1005.0))  # so is a discarded one's
    with pytest.raises(PreservePostBusy):
        posts.keep([("a", "6")], "/app/forms/x", 1006.0)
    later = 1002.0 + config.transaction_ttl + 60  # the record kept at 1002 has expired, the others not
    posts.keep([("a", "7")], "/app/forms/x", later)
    with pytest.raises(PreservePostBusy):
        posts.keep([("a", "8")], "/app/forms/x", later)
    big = [("a", "x" * (3 * preserved_posts.MIN_RECORD_BYTES))]  # one record over the whole budget
    with pytest.raises(PreservePostBusy):
        PostRecords(config, DictBackend(config)).keep(big, "/app/forms/x", 1000.0)
