"""The ``failure_page_template`` file: an operator's HTML page around the failure message, checked at start-up.

The file is read once, when the middleware is built (at most :data:`MAX_TEMPLATE_BYTES`,
UTF-8), and must hold each of :data:`REQUIRED` (``{title}``, ``{message}``, ``{code}``)
and nothing that looks like another placeholder (``{name}``): a typo such as
``{mesage}`` is one :class:`~sso_middleware.errors.ConfigError` naming the setting,
not a page that shows the literal text to users.  Braces that are not a placeholder
(CSS rules, ``{{``) are left as they are: this is no ``str.format`` template, so a
stylesheet needs no doubled braces and a value can never reach attribute access
(``{code.__class__}``).

Security caveat: the template is trusted HTML (the operator's own file); only the
values put into it are escaped, by :mod:`sso_middleware._wsgi.pages`, in one pass
(a value containing ``{code}`` is never expanded again).  Keep the file out of
reach of anyone who must not change the sign-in pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from .setting_files import read_setting_file

SETTING = "failure_page_template"
#: Placeholders every template must use.
REQUIRED = ("title", "message", "code")
#: Placeholders a template may use besides: the page's language (``en``, ``de``) and the start page's URL.
OPTIONAL = ("lang", "home")
PLACEHOLDERS = REQUIRED + OPTIONAL
#: A template larger than this is a mistake (the built-in page is 1 KB).
MAX_TEMPLATE_BYTES = 256 * 1024
#: What counts as a placeholder: a name in braces.  Anything else in braces (``{color:red}``) is text.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class PageTemplate:
    """A checked template: its text, and which optional placeholders it uses."""

    text: str
    path: str = ""

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholders the template uses, in the order of :data:`PLACEHOLDERS`."""
        found = set(PLACEHOLDER.findall(self.text))
        return tuple(name for name in PLACEHOLDERS if name in found)


def parse(text: str, path: str = "") -> PageTemplate:
    """A template from its text; one ``ConfigError`` when a placeholder is missing or unknown."""
    found = PLACEHOLDER.findall(text)
    unknown = sorted({name for name in found if name not in PLACEHOLDERS})
    if unknown:
        raise ConfigError(SETTING, f"{path or 'the template'} has unknown placeholders "
                          f"{', '.join('{' + name + '}' for name in unknown)} (known: "
                          f"{', '.join('{' + name + '}' for name in PLACEHOLDERS)})")
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        raise ConfigError(SETTING, f"{path or 'the template'} lacks the placeholders "
                          f"{', '.join('{' + name + '}' for name in missing)}")
    return PageTemplate(text, path)


def load(path: str) -> PageTemplate:
    """The template the setting names, read and checked now (``ConfigError`` naming the setting otherwise)."""
    data = read_setting_file(SETTING, path, MAX_TEMPLATE_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(SETTING, f"{path!r} is not UTF-8 text") from None
    if "\x00" in text:
        raise ConfigError(SETTING, f"{path!r} is not a text file")
    return parse(text, repr(path))
