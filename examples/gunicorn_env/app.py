"""A plain WSGI app behind single sign-on, configured from ``SSO_*`` environment variables.

    gunicorn --workers 2 --bind 127.0.0.1:8000 app:app

``SSOConfig.from_env()`` reads every ``SSO_<SETTING>`` variable (an unknown ``SSO_*``
name is an error) and the middleware is built once per worker at import time, so a
bad setting stops gunicorn at start-up rather than on the first request.  The default
``file`` session store is shared by all workers on the machine.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable

from sso_middleware import SSOConfig, SSOMiddleware, get_userinfo


def legacy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The application: it only reads what the middleware put in the environ."""
    if environ.get("PATH_INFO") == "/whoami":
        body = json.dumps(
            {"remote_user": environ.get("REMOTE_USER"), "userinfo": get_userinfo(environ), "worker_pid": os.getpid()}
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    body = b'<!DOCTYPE html><title>gunicorn</title><a href="/auth/login?target_url=/whoami">Sign in</a>'
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


app = SSOMiddleware(legacy, SSOConfig.from_env())
