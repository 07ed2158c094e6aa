"""How the doctor puts what it saw into words: one-line texts, lists of names, errors.

Shared by the sources, the checks and the report, so that every finding describes a
network failure (:func:`describe_error`) or a provider's refusal (:func:`provider_words`)
the same way.

Security caveat: these functions shorten and flatten text (control characters become
spaces) but mask nothing: the report passes every line through
:meth:`~sso_middleware._redaction.Redactor.show` before it is printed.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import ProviderError


def one_line(text: str) -> str:
    """``text`` on one line of at most 300 characters, control characters and runs of spaces as one space."""
    return " ".join("".join(char if char.isprintable() else " " for char in text).split())[:300]


def names(values: Any) -> str:
    """A list from a discovery document or a setting, comma-separated ("missing" when it is not a list)."""
    if not isinstance(values, (list, tuple)):
        return "missing"
    return ", ".join(str(value) for value in values) or "none"


def provider_words(document: Any) -> str:
    """``: error -- error_description`` of an OAuth error answer, shortened ("" when it has no ``error``)."""
    if not isinstance(document, dict):
        return ""
    error = one_line(str(document.get("error", "")))[:64]
    description = one_line(str(document.get("error_description", "")))[:160]
    return f": {error}" + (f" -- {description}" if description else "") if error else ""


def describe_error(error: Optional[BaseException]) -> str:
    """A provider error in a few words, with the operating system's reason when there is one."""
    if error is None:
        return "no answer"
    text = error.detail if isinstance(error, ProviderError) else one_line(str(error))
    reason = _os_reason(error)
    return f"{text} ({reason})" if reason and reason not in text else text


def _os_reason(error: BaseException) -> Optional[str]:
    """The innermost operating-system reason (``Connection refused``) in an exception's chain."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    reason: Optional[str] = None
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = str(current.strerror)
        elif "Name or service not known" in str(current) or "getaddrinfo" in str(current):
            reason = reason or "host name not found"
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return reason
