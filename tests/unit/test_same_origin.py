"""The one same-origin rule of state-changing requests (the session endpoint's POST, preserve_post's forms)."""

from __future__ import annotations

from typing import Optional

import pytest

from sso_middleware._wsgi.same_origin import foreign_origin

ORIGINS = ("https://app2.example", "https://app2.example.net")


@pytest.mark.parametrize(
    ("origin", "site", "accepted"),
    [
        pytest.param("https://app2.example", None, True, id="origin-only"),
        pytest.param("https://app2.example.net", "same-origin", True, id="second-origin-and-metadata"),
        pytest.param(None, "same-origin", True, id="metadata-only"),
        pytest.param(None, None, False, id="neither"),
        pytest.param("https://evil.example", None, False, id="foreign-origin"),
        pytest.param("https://evil.example", "same-origin", False, id="foreign-origin-claims-same"),
        pytest.param("https://app2.example", "same-site", False, id="sibling-metadata"),
        pytest.param("https://app2.example", "cross-site", False, id="cross-site-metadata"),
        pytest.param(None, "same-site", False, id="no-origin-same-site"),
        pytest.param(None, "none", False, id="no-origin-user-initiated"),
        pytest.param("null", "same-origin", False, id="opaque-origin"),
        pytest.param("https://APP2.example", None, False, id="not-canonical"),
        pytest.param("https://app2.example:443", None, False, id="default-port-spelled-out"),
        pytest.param("http://app2.example", None, False, id="other-scheme"),
        pytest.param("https://sub.app2.example", None, False, id="sibling-subdomain"),
        pytest.param("https://app2.example, https://evil.example", None, False, id="two-origins"),
    ],
)
def test_only_this_sites_own_pages_pass(origin: Optional[str], site: Optional[str], accepted: bool) -> None:
    environ = {name: value for name, value in (("HTTP_ORIGIN", origin), ("HTTP_SEC_FETCH_SITE", site))
               if value is not None}
    reason = foreign_origin(environ, ORIGINS)
    assert (reason is None) is accepted, reason
    if not accepted:
        assert reason  # a reason for the log, never an empty string
