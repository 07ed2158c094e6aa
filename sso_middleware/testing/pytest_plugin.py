"""The pytest plugin: the session-scoped ``oidc_provider`` fixture (a started ``DevProvider``).

Installing ``sso_middleware`` registers it (entry point ``pytest11``: ``sso_middleware =
sso_middleware.testing``, which re-exports this fixture); from a bare checkout load it
with ``-p sso_middleware.testing``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .devprovider import DevProvider

__all__ = ["oidc_provider"]


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[DevProvider]:
    """A started ``DevProvider`` shared by the whole test session (stopped at the end).

    It holds the demo clients ``app1``/``app2``; register your own clients with
    ``oidc_provider.register_client(...)``. Call ``clear_events()`` before asserting on
    ``events()``; ``rotate_keys()`` restarts it and drops its sessions for every test
    that runs afterwards.
    """
    provider = DevProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
