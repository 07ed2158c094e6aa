"""The demo SPA's server (``demo/spa.py``): its fixed files, the library, ``/config.json``, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import webtest

from demo.spa import LIBRARY_PATH, SPA_DIR, SPAServer

SETTINGS = {
    "authority": "http://127.0.0.1:5000",
    "client_id": "spa",
    "api_url": "http://127.0.0.1:5002/api/me",
    "check_seconds": 30,
}


@pytest.fixture
def app(tmp_path: Path) -> webtest.TestApp:
    library = tmp_path / "oidc-client-ts.min.js"
    library.write_text("var oidc = {};")
    return webtest.TestApp(SPAServer(SETTINGS, library))


@pytest.mark.parametrize(("path", "kind"), [
    pytest.param("/", "text/html", id="index"),
    pytest.param("/callback", "text/html", id="callback"),
    pytest.param("/silent-renew.html", "text/html", id="silent-renew"),
    pytest.param("/app.js", "text/javascript", id="app"),
    pytest.param("/manager.js", "text/javascript", id="manager"),
    pytest.param(LIBRARY_PATH, "text/javascript", id="library"),
    pytest.param("/style.css", "text/css", id="style"),
])
def test_the_spa_files_are_served_with_a_strict_policy(app: webtest.TestApp, path: str, kind: str) -> None:
    answer = app.get(path)
    assert answer.content_type == kind
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "connect-src 'self' http://127.0.0.1:5000 http://127.0.0.1:5002;" in policy
    assert "frame-src 'self' http://127.0.0.1:5000;" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_pages_load_only_scripts_of_their_own_origin() -> None:
    for page in ("index.html", "silent-renew.html"):
        text = (SPA_DIR / page).read_text()
        assert "http" not in text.replace('lang="en"', ""), f"{page} names another origin"
        assert "<script>" not in text, f"{page} has an inline script (the policy forbids it)"


def test_config_json_carries_the_settings(app: webtest.TestApp) -> None:
    answer = app.get("/config.json")
    assert answer.content_type == "application/json"
    assert json.loads(answer.text) == SETTINGS
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", [
    "/package.json", "/package-lock.json", "/node_modules/oidc-client-ts/package.json", "/../demo_app.py",
    "/%2e%2e/demo_app.py", "/index.html/", "/app.js.map", "/vendor/",
])
def test_nothing_else_is_served(app: webtest.TestApp, path: str) -> None:
    app.get(path, status=404)


def test_only_get_and_head(app: webtest.TestApp) -> None:
    answer = app.post("/", status=405)
    assert answer.headers["Allow"] == "GET, HEAD"
