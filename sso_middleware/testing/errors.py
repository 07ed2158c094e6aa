"""The errors of the development-provider tools (installing, starting and driving it).

They are test-tool errors, not the middleware's: a test that sees one has a broken set-up
(no Node.js, a provider that did not start, a page that is not what the driver expected).
"""

from __future__ import annotations

__all__ = ["DevProviderError", "DevProviderStartTimeout"]


class DevProviderError(RuntimeError):
    """The development provider could not be installed, started, or used."""


class DevProviderStartTimeout(DevProviderError):
    """The provider's process kept running but never became ready (it is stopped; a start retries once)."""

