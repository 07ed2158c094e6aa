"""How the doctor words what it saw (:mod:`sso_middleware._doctor.wording`)."""

from __future__ import annotations

import socket

from sso_middleware._doctor.wording import describe_error, names, one_line, provider_words
from sso_middleware.errors import ProviderError, ProviderUnreachable


def test_describe_error_adds_the_operating_systems_reason_from_the_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as refused:
            raise ProviderUnreachable("the provider cannot be reached") from refused
    except ProviderError as error:
        assert describe_error(error) == "the provider cannot be reached (Connection refused)"


def test_describe_error_names_an_unknown_host_and_says_a_reason_once() -> None:
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError:
            raise RuntimeError("cannot connect to op.example") from None  # the reason stays in __context__
    except RuntimeError as error:
        assert describe_error(error) == "cannot connect to op.example (Name or service not known)"
    assert describe_error(RuntimeError("getaddrinfo failed")) == "getaddrinfo failed (host name not found)"
    assert describe_error(OSError(13, "Permission denied")) == "[Errno 13] Permission denied"
    assert describe_error(None) == "no answer"


def test_one_line_flattens_control_characters_and_truncates() -> None:
    assert one_line("a\n\tb\x1b[31m  c\r\n") == "a b [31m c"
    assert len(one_line("x" * 1000)) == 300


def test_provider_words_and_names() -> None:
    assert provider_words({"error": "invalid_client", "error_description": "bad\nsecret"}) == (
        ": invalid_client -- bad secret")
    assert provider_words({"error": "invalid_grant"}) == ": invalid_grant"
    assert provider_words({"error_description": "no error member"}) == ""
    assert provider_words(["not", "a", "document"]) == ""
    assert names(["RS256", "ES256"]) == "RS256, ES256"
    assert names([]) == "none"
    assert names(None) == "missing"
