"""What every section shares: the provider, Redis, temporary folders, settings, and how to build configs."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sso_middleware.testing import ClientCredentials, DevProvider

from .servers import Server


@dataclass
class Options:
    quick: bool = False
    workers: int = 2
    worker_class: str = "sync"
    threads: int = 4  # gthread only
    connections: int = 16
    wrk_seconds: float = 2.0
    wrk_warmup: float = 1.0  # before the first pass of each contestant
    wrk_passes: int = 6
    inprocess_rounds: int = 30
    inprocess_batch: float = 0.02
    inprocess_budget: float = 40.0
    logins: int = 1000  # callbacks timed with the file store (and counted); other stores: callback_logins
    callback_logins: int = 300
    round_trips: int = 1000
    round_trip_budget: float = 60.0
    growth_sizes: tuple[int, ...] = (1000, 1000000)
    profile_seconds: float = 4.0

    @classmethod
    def quick_run(cls) -> Options:
        return cls(quick=True, wrk_seconds=2.0, wrk_warmup=0.5, wrk_passes=1, inprocess_rounds=6,
                   inprocess_budget=10.0, logins=200, callback_logins=100, round_trips=100, round_trip_budget=15.0,
                   growth_sizes=(1000, 20000), profile_seconds=2.0)


@dataclass
class Context:
    repo: Path
    tmp: Path
    stack: contextlib.ExitStack
    provider: DevProvider
    redis: Server
    options: Options
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flask_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    inprocess_base_url: str = "http://127.0.0.1:8000"
    notes: list[str] = field(default_factory=list)

    @property
    def logdir(self) -> Path:
        path = self.tmp / "logs"
        path.mkdir(exist_ok=True)
        return path

    def redis_url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/{db}"

    def register(self, base_url: str, callback_path: str = "/auth/callback") -> ClientCredentials:
        return self.provider.register_client([base_url + callback_path], post_logout_redirect_uris=[base_url + "/"])

    @staticmethod
    def cookie_name(kind: str) -> str:
        return "bench_" + kind.replace("ext:", "")

    def sso_settings(self, kind: str, base_url: str, client: ClientCredentials, redis_db: int = 0) -> dict[str, Any]:
        """SSOMiddleware settings for one session store; equal settings share sessions (and cookies)."""
        settings: dict[str, Any] = {
            "issuer": self.provider.issuer,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "base_url": base_url,
            "session_secret": self.session_secret,
            "allow_insecure_http": True,
            "session_type": kind,
            "cookie_name": self.cookie_name(kind),
        }
        if kind == "file":
            settings["session_data_dir"] = str(self.tmp / "sessions-file")
        elif kind == "ext:redis":
            settings["session_url"] = self.redis_url(redis_db)
        return settings

    @staticmethod
    def sso_env(settings: dict[str, Any]) -> dict[str, str]:
        """The same settings as ``SSO_*`` environment variables (``SSOConfig.from_env()``)."""
        env = {}
        for name, value in settings.items():
            env["SSO_" + name.upper()] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return env
