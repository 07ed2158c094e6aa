"""Where the doctor's configuration comes from (:mod:`sso_middleware._doctor.sources`).

The end-to-end runs in tests/test_doctor.py show the sources through the command; these
show what each source gathers as secret before anything is loaded, and the usage errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import pytest

from sso_middleware._doctor.sources import (
    Source,
    SourceError,
    UsageError,
    env_source,
    ini_source,
    read_settings_file,
    settings_source,
    source_from_args,
)
from sso_middleware.errors import ConfigError

SETTINGS = {
    "issuer": "https://op.example/",
    "client_id": "app1",
    "client_secret": "client-secret-0123456789",
    "base_url": "https://app.example",
    "session_secret": "session-secret-0123456789abcdef-0123",
}


def args(ini: Optional[str] = None, settings: Optional[str] = None, section: Optional[str] = None,
         *overrides: str) -> argparse.Namespace:
    return argparse.Namespace(ini=ini, settings=settings, env=False, section=section, set=list(overrides), json=False)


def test_the_environment_source_knows_its_secrets_and_builds_the_config() -> None:
    environ = {f"SSO_{name.upper()}": value for name, value in SETTINGS.items()}
    environ.update(SSO_SESSION_TYPE="ext:redis", SSO_SESSION_URL="redis://:store-pw@127.0.0.1:6379/0",
                   SSO_HTTP_PROXY="http://user:proxy-pw@proxy.example:3128", HOME="/root")
    source = env_source(environ, {"client_secret": "overridden-secret"})
    assert source.description == "environment SSO_*"
    assert set(source.secrets) == {"overridden-secret", SETTINGS["session_secret"], "store-pw", "proxy-pw"}
    config = source.load()
    assert config.client_secret == "overridden-secret"
    assert "overridden-secret" not in repr(source) and SETTINGS["session_secret"] not in repr(source)


def test_a_settings_file_is_read_when_the_source_is_made_but_built_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "sso.conf"
    path.write_text("# a comment\n\n" + "".join(f"{name} = {value}\n" for name, value in SETTINGS.items())
                    + "clock_skew = -1\n")
    source = settings_source(str(path), {})
    assert SETTINGS["client_secret"] in source.secrets
    with pytest.raises(ConfigError, match="clock_skew"):  # the first failed check, not a usage error
        source.load()
    assert settings_source(str(path), {"clock_skew": "30"}).load().clock_skew == 30


def test_a_settings_file_that_does_not_parse_fails_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(f"client_secret {SETTINGS['client_secret']}\n")
    source = settings_source(str(path), {})
    with pytest.raises(SourceError) as caught:
        source.load()
    assert str(caught.value).endswith("line 1: expected 'name = value'")
    assert SETTINGS["client_secret"] not in str(caught.value)


@pytest.mark.parametrize(("name", "text", "settings"), [
    pytest.param("sso.conf", "a = 1\n  # indented comment\nb= two words \n", {"a": "1", "b": "two words"}, id="lines"),
    pytest.param("sso.JSON", '{"a": 1, "b": ["x"]}', {"a": 1, "b": ["x"]}, id="json"),
])
def test_read_settings_file(tmp_path: Path, name: str, text: str, settings: dict[str, object]) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert read_settings_file(str(path)) == settings


def test_an_ini_source_gathers_secrets_from_every_section_but_not_from_get_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.ini"
    path.write_text(
        "[DEFAULT]\nclient_secret = default-secret-value\n\n"
        "[filter:sso]\nuse = egg:sso_middleware#main\nget client_secret = client_secret\n"
        "session_secret = ini-session-secret-0123456789\nsession_url = redis://:ini-store-pw@127.0.0.1/0\n"
    )
    source = ini_source(str(path), None, {"client_secret": "global-secret-value"})
    assert source.description == f"ini {path} [filter:sso]"
    assert set(source.secrets) == {"default-secret-value", "ini-session-secret-0123456789", "ini-store-pw",
                                   "global-secret-value"}


@pytest.mark.parametrize(("namespace", "fragment"), [
    pytest.param(args(None, None, "sso"), "--section needs --ini", id="section-without-ini"),
    pytest.param(args(None, None, None, "client_secret"), "--set expects NAME=VALUE, not 'client_secret'...",
                 id="set-without-equals"),
    pytest.param(args(None, None, None, "=value"), "--set expects NAME=VALUE", id="set-without-name"),
    pytest.param(args(None, "/nonexistent/sso.conf"), "settings file not found", id="no-settings-file"),
    pytest.param(args("/nonexistent/app.ini"), "ini file not found", id="no-ini-file"),
])
def test_usage_errors(namespace: argparse.Namespace, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment.replace(".", r"\.").replace("-", r"\-")):
        source_from_args(namespace)


def test_an_ini_file_needs_a_middleware_section(tmp_path: Path) -> None:
    path = tmp_path / "app.ini"
    path.write_text("[filter:other]\nuse = egg:Paste#gzip\n\n[app:main]\nuse = egg:x\n")
    with pytest.raises(UsageError, match="no \\[filter:NAME\\] section with use = egg:sso_middleware#main"):
        source_from_args(args(str(path)))
    with pytest.raises(UsageError, match="is not a \\[filter:NAME\\] section"):
        source_from_args(args(str(path), None, "app:main"))
    with pytest.raises(UsageError, match="has no section \\[filter:sso\\]"):
        source_from_args(args(str(path), None, "sso"))


def test_the_arguments_pick_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sso.json"
    path.write_text("{}")
    assert source_from_args(args(None, str(path))).description == f"settings file {path}"
    monkeypatch.setenv("SSO_CLIENT_SECRET", "env-secret-value")
    source = source_from_args(args())
    assert isinstance(source, Source) and source.description == "environment SSO_*"
    assert "env-secret-value" in source.secrets
