"""Test support: a real OpenID Provider for tests of applications using sso_middleware.

This module is a pytest plugin (entry point ``pytest11``: ``sso_middleware =
sso_middleware.testing``) and a small library usable without pytest.

It runs the development OpenID Provider bundled in ``sso_middleware/devprovider`` — the
npm package ``oidc-provider`` (v9) configured to behave like an Auth0 tenant for the parts
sso_middleware relies on — as a ``node`` child process on a loopback address:

- ``DevProvider`` starts, restarts (key rotation) and stops it, registers clients
  dynamically, reads its event log, and drives its login and logout pages like a browser.
- The session-scoped fixture ``oidc_provider`` yields a started ``DevProvider``.

Requirements: Node.js >= 20 and npm on ``PATH``. The npm dependencies are installed once
(``npm ci`` from the committed ``package-lock.json``) into a cache directory —
``$DEVPROVIDER_HOME`` or ``~/.cache/sso_middleware`` (``$XDG_CACHE_HOME`` honoured) —
so the installed Python package may be read-only.

The provider knows two users (``alice``/``alice-password``, ``bob``/``bob-password``) and,
unless told otherwise, the demo clients ``app1`` and ``app2`` (see ``DEFAULT_CLIENTS``).

For step-up authentication it has two ACR levels: a password login gives ``ACR_PWD``
(amr ``["pwd"]``); a login with the one-time code ``DEV_OTP`` as well
(``login(..., otp=DEV_OTP)``) gives ``ACR_MFA`` (amr ``["pwd", "otp"]``). ID tokens always
carry ``acr``, ``amr`` and ``auth_time``. ``acr_values`` is enforced: a provider session
whose acr is not among the requested values is shown the login form again (interaction
reason ``ACR_UNMET_REASON``; with ``prompt=none`` the client gets ``login_required``), and
so is a session older than ``max_age`` seconds. The login answering such a prompt is
accepted whatever level it reached, so the relying party must check ``acr`` itself.
Tests normally register their own client with the redirect URIs they need::

    def test_sign_in(oidc_provider):
        client = oidc_provider.register_client(["http://127.0.0.1:8080/auth/callback"])
        ...
        response = oidc_provider.login(requests.Session(), "alice", authorize_url)
        assert response.status_code == 303   # the redirect back to the client
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]

Everything here is for tests on one machine: the provider listens on loopback only,
keeps its state in memory, and its dynamic registration is protected only by a random
initial access token known to this process.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

__all__ = [
    "ACR_MFA",
    "ACR_PWD",
    "ACR_UNMET_REASON",
    "DEFAULT_CLIENTS",
    "DEFAULT_USERS",
    "DEV_OTP",
    "ClientCredentials",
    "DevProvider",
    "DevProviderError",
    "DevUser",
    "ProviderTLS",
    "devprovider_source_dir",
    "ensure_devprovider_installed",
]

#: Files of the bundled provider that are copied into the install directory.
_SOURCE_FILES = ("package.json", "package-lock.json", "server.mjs")
_NODE_MISSING = (
    "sso_middleware.testing needs Node.js >= 20 and npm: install them (Debian: apt-get install -y nodejs npm)"
)
_MIN_NODE_MAJOR = 20
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_READY_RE = re.compile(r"^devprovider ready issuer=(?P<issuer>\S+) port=(?P<port>\d+)", re.MULTILINE)


#: The provider's ACR values (discovery's ``acr_values_supported``; must match devprovider/accounts.mjs):
#: a password-only login, and a login with password and one-time code.
ACR_PWD = "urn:dev:loa:pwd"
ACR_MFA = "urn:dev:loa:mfa"
#: The one-time code every user of the provider has (``login(..., otp=DEV_OTP)``).
DEV_OTP = "123456"
#: The ``reasons`` entry of an ``interaction`` event when the session's acr is not among
#: the requested ``acr_values``.
ACR_UNMET_REASON = "acr_values_unmet"


log = logging.getLogger("sso_middleware.testing")


class DevProviderError(RuntimeError):
    """The development provider could not be installed, started, or used."""


class DevProviderStartTimeout(DevProviderError):
    """The provider's process kept running but never became ready (it is stopped; a start retries once)."""


@dataclass(frozen=True)
class ClientCredentials:
    """A client known to the provider: what a relying party needs to be configured with.

    ``metadata`` is the full client metadata the provider holds (including the secret);
    ``DevProvider`` uses it to re-create registered clients when it restarts.
    """

    client_id: str
    client_secret: str = field(repr=False)
    token_endpoint_auth_method: str = "client_secret_basic"
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def redirect_uri(self) -> str:
        """The first registered redirect URI."""
        if not self.redirect_uris:
            raise DevProviderError(f"client {self.client_id} has no redirect_uris")
        return self.redirect_uris[0]

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ClientCredentials:
        """Build credentials from oidc-provider client metadata (static or registered)."""
        return cls(
            client_id=str(metadata["client_id"]),
            client_secret=str(metadata.get("client_secret", "")),
            token_endpoint_auth_method=str(metadata.get("token_endpoint_auth_method", "client_secret_basic")),
            redirect_uris=tuple(metadata.get("redirect_uris", ())),
            post_logout_redirect_uris=tuple(metadata.get("post_logout_redirect_uris", ())),
            metadata=MappingProxyType(copy.deepcopy(dict(metadata))),
        )


@dataclass(frozen=True)
class ProviderTLS:
    """Serve the development provider over https (opt-in), optionally requiring client certificates.

    ``cert``/``key``: the server's PEM certificate and key (for 127.0.0.1 / localhost);
    ``ca``: the PEM CA that issued it, trusted by ``DevProvider``'s own requests;
    ``client_ca``: when set, every connection must present a client certificate issued by
    it (mutual TLS) -- then ``client_cert``/``client_key`` is what ``DevProvider`` itself presents.
    """

    cert: Path
    key: Path
    ca: Path
    client_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True)
class DevUser:
    """A user the development provider knows, and the claims it issues for them.

    ``claims`` are the claims of the ID token and of userinfo when the scopes
    ``openid profile email`` are granted (``sub`` is the username). The ID token also
    carries ``connection`` when the authorization request had one.
    """

    username: str
    password: str = field(repr=False)
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str:
        """The subject identifier (equal to the username)."""
        return self.username


#: The namespaced roles claim of the development provider's users (like an Auth0 Action adds).
ROLES_CLAIM = "https://example.com/roles"


def _user(username: str, given_name: str, roles: tuple[str, ...]) -> DevUser:
    return DevUser(
        username=username,
        password=f"{username}-password",
        claims=MappingProxyType(
            {
                "sub": username,
                "name": f"{given_name} Example",
                "given_name": given_name,
                "family_name": "Example",
                "nickname": username,
                "preferred_username": username,
                "email": f"{username}@example.com",
                "email_verified": True,
                ROLES_CLAIM: list(roles),
            }
        ),
    )


#: The users of the development provider (must match USERS in devprovider/accounts.mjs).
DEFAULT_USERS: Mapping[str, DevUser] = MappingProxyType(
    {"alice": _user("alice", "Alice", ("admin", "staff")), "bob": _user("bob", "Bob", ("staff",))}
)


def _demo_client(n: int, auth_method: str) -> ClientCredentials:
    origin = f"http://127.0.0.1:500{n}"
    return ClientCredentials.from_metadata(
        {
            "client_id": f"app{n}",
            "client_secret": f"app{n}-secret",
            "client_name": f"App {n}",
            "token_endpoint_auth_method": auth_method,
            "redirect_uris": [f"{origin}/auth/callback"],
            "post_logout_redirect_uris": [f"{origin}/"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "require_auth_time": True,
        }
    )


#: The demo clients the provider has unless ``DevProvider(clients=...)`` replaces them
#: (must match DEFAULT_CLIENTS in devprovider/clients.mjs).
DEFAULT_CLIENTS: Mapping[str, ClientCredentials] = MappingProxyType(
    {"app1": _demo_client(1, "client_secret_basic"), "app2": _demo_client(2, "client_secret_post")}
)

# metadata returned by registration that is not client metadata
_REGISTRATION_ONLY = (
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
)


# ---------------------------------------------------------------------------------------
# installation


def devprovider_source_dir() -> Path:
    """The bundled provider's folder inside the installed package (may be read-only)."""
    return Path(__file__).resolve().parent / "devprovider"


def _cache_base() -> Path:
    configured = os.environ.get("DEVPROVIDER_HOME")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sso_middleware"


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DevProviderError(f"{_NODE_MISSING} ({name!r} is not on PATH)")
    return path


def _check_node(node: str) -> None:
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argv, node found by shutil.which
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise DevProviderError(f"{_NODE_MISSING} (running {node} --version failed: {exc})") from exc
    match = re.match(r"v(\d+)\.", out)
    if match is None or int(match.group(1)) < _MIN_NODE_MAJOR:
        raise DevProviderError(f"{_NODE_MISSING} (found node {out or 'of unknown version'})")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (POSIX ``flock``; a no-op elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        else:  # pragma: no cover - the atomic rename below still prevents half installs
            yield


def _copy_modules(source: Path, target: Path) -> Path:
    """Copy the provider's ES modules (``source/*.mjs``) into ``target/modules-<hash>``.

    The folder is named by a hash of the modules' names and contents and is filled in a
    temporary folder renamed into place, so it never changes once it exists: two checkouts
    (or an edit during a test run) with different modules never overwrite the files a running
    provider has loaded or is about to load. Its ``node_modules`` is a link to the one of
    ``target``, whose npm dependencies all module folders share.
    """
    modules = sorted(source.glob("*.mjs"))
    digest = hashlib.sha256()
    for path in modules:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    folder = target / f"modules-{digest.hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".modules-"))
    try:
        for path in modules:
            shutil.copyfile(path, staging / path.name)
        (staging / "node_modules").symlink_to(Path("..") / "node_modules", target_is_directory=True)
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():  # not another process that renamed the same copy first
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure_devprovider_installed(home: Path | None = None, *, npm: str | None = None) -> Path:
    """Return a directory holding ``server.mjs`` and its modules, npm dependencies installed.

    The dependencies are in ``<home>/devprovider-<hash>`` where the hash covers
    ``package.json`` and ``package-lock.json``; ``home`` defaults to ``$DEVPROVIDER_HOME``
    or ``~/.cache/sso_middleware``. ``npm ci`` runs only when that directory does not exist
    yet, in a temporary directory renamed into place when it succeeded; a file lock
    keeps concurrent test processes from installing twice. The returned directory is
    ``modules-<hash of the *.mjs>`` inside it, made on the first call that sees those
    modules, so editing the bundled provider needs no reinstall.
    """
    source = devprovider_source_dir()
    missing = [name for name in _SOURCE_FILES if not (source / name).is_file()]
    if missing:
        raise DevProviderError(f"the bundled devprovider is incomplete: {missing} missing in {source}")
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((source / name).read_bytes())
    base = (home if home is not None else _cache_base()).expanduser()
    target = base / f"devprovider-{digest.hexdigest()[:16]}"

    if not (target / "node_modules").is_dir():
        with _file_lock(base / f"{target.name}.lock"):
            if not (target / "node_modules").is_dir():
                npm_path = npm or _require_tool("npm")
                staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{target.name}-"))
                try:
                    for name in _SOURCE_FILES:
                        shutil.copyfile(source / name, staging / name)
                    env = dict(os.environ)
                    env.update(
                        npm_config_audit="false",
                        npm_config_fund="false",
                        npm_config_update_notifier="false",
                    )
                    try:
                        result = subprocess.run(  # noqa: S603 - a fixed argv, npm found by shutil.which
                            [npm_path, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"],
                            cwd=staging,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=600,
                            check=False,
                        )
                    except (OSError, subprocess.SubprocessError) as exc:
                        raise DevProviderError(f"npm ci failed to run in {staging}: {exc}") from exc
                    if result.returncode != 0:
                        output = (result.stdout + result.stderr).strip()[-4000:]
                        raise DevProviderError(
                            f"npm ci failed (exit {result.returncode}) for the devprovider:\n{output}"
                        )
                    if target.exists():  # a stale directory without node_modules
                        shutil.rmtree(target, ignore_errors=True)
                    os.replace(staging, target)
                finally:
                    if staging.exists():
                        shutil.rmtree(staging, ignore_errors=True)
    return _copy_modules(source, target)


# ---------------------------------------------------------------------------------------
# HTML forms (the provider's login and logout pages)


@dataclass
class _Form:
    attrs: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(values)
            self.forms.append(self._current)
        elif (
            tag == "input"
            and self._current is not None
            and values.get("name")
            and values.get("type", "text") not in ("submit", "button", "checkbox", "radio")
        ):
            self._current.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(response: requests.Response) -> list[_Form]:
    if "html" not in response.headers.get("Content-Type", ""):
        return []
    parser = _FormParser()
    parser.feed(response.text)
    parser.close()
    return parser.forms


def _form_by_id(response: requests.Response, form_id: str) -> _Form | None:
    return next((f for f in _forms(response) if f.attrs.get("id") == form_id), None)


def _auto_submit_form(response: requests.Response) -> _Form | None:
    """The form of oidc-provider's self-submitting pages (form_post), if this is one."""
    if "document.forms[0].submit()" not in response.text:
        return None
    forms = _forms(response)
    if forms and forms[0].attrs.get("method", "get").lower() == "post":
        return forms[0]
    return None


# ---------------------------------------------------------------------------------------
# the provider process

_live: set[DevProvider] = set()
_live_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """Safety net: no node process outlives the Python process that started it."""
    with _live_lock:
        providers = list(_live)
    for provider in providers:
        with contextlib.suppress(Exception):
            provider.stop()


class DevProvider:
    """The bundled development OpenID Provider, run as a ``node`` child process.

    Use it as a context manager, through the ``oidc_provider`` fixture, or with explicit
    ``start()`` / ``stop()``. The process runs in its own process group, exits by itself
    when this Python process dies (it watches its stdin), and is stopped at interpreter
    exit at the latest.

    Arguments:
        host: loopback address to listen on (``127.x.y.z``, ``::1``, ``localhost``).
            Another ``127.x`` address than your applications' keeps cookie jars apart.
        port: 0 (default) lets the provider pick a free port; ``port`` tells the result.
        trailing_slash: advertise ``http://host:port/`` (Auth0 style) instead of
            ``http://host:port`` as the issuer.
        clients: client metadata replacing ``DEFAULT_CLIENTS`` (oidc-provider format:
            ``client_id``, ``client_secret``, ``redirect_uris``, ...).
        access_token_ttl, id_token_ttl: token lifetimes in seconds.
        registration_token: initial access token for dynamic registration; random if None.
        home: where to install the npm dependencies (see ``ensure_devprovider_installed``).
        startup_timeout: seconds to wait for the provider to answer discovery (generous: a loaded CI machine
            can take long to start node and generate the signing key; a healthy start takes about a second).
        verbose: let the provider log every request to its stderr (see ``stderr_text()``).
        tls: serve https with these files (see ``ProviderTLS``); the issuer becomes ``https://host:port``.
        allow_peers: accept connections only from these source addresses (e.g. a proxy's ``Bind``
            address), like an egress firewall; others are closed at once.
        proxy: the proxy URL through which ``DevProvider``'s own requests (readiness, registration,
            events) reach the provider -- needed when ``allow_peers`` leaves only the proxy.
        require_pushed_authorization: announce ``require_pushed_authorization_requests`` and refuse
            authorization requests that were not pushed (PAR, RFC 9126).

    Attributes (valid once started): ``issuer`` exactly as discovery says, ``port``,
    ``base_url`` (the provider's origin), ``clients`` (name -> ``ClientCredentials`` of the
    static clients), ``registered_clients``, ``users`` (name -> ``DevUser``),
    ``registration_token``.
    """

    users: Mapping[str, DevUser] = DEFAULT_USERS

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        trailing_slash: bool = False,
        clients: Sequence[Mapping[str, Any]] | None = None,
        access_token_ttl: int = 3600,
        id_token_ttl: int = 3600,
        registration_token: str | None = None,
        home: Path | None = None,
        startup_timeout: float = 60.0,
        verbose: bool = False,
        tls: ProviderTLS | None = None,
        allow_peers: Sequence[str] = (),
        proxy: str | None = None,
        require_pushed_authorization: bool = False,
    ) -> None:
        self.host = host
        self.require_pushed_authorization = require_pushed_authorization
        self.tls = tls
        self.allow_peers = tuple(allow_peers)
        self.proxy = proxy
        self._requested_port = port
        self.trailing_slash = trailing_slash
        self.access_token_ttl = access_token_ttl
        self.id_token_ttl = id_token_ttl
        self.registration_token = registration_token or secrets.token_urlsafe(24)
        self.home = home
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        if clients is None:
            self.clients: dict[str, ClientCredentials] = dict(DEFAULT_CLIENTS)
        else:
            self.clients = {}
            for metadata in clients:
                credentials = ClientCredentials.from_metadata(metadata)
                self.clients[credentials.client_id] = credentials
        self.registered_clients: list[ClientCredentials] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._generation = 0
        self._issuer: str | None = None
        self._port: int | None = None
        self._discovery: dict[str, Any] | None = None
        self._http = self._new_session()
        self._lock = threading.RLock()

    def _new_session(self) -> requests.Session:
        """The session of DevProvider's own requests: trusting ``tls.ca``, through ``proxy`` when given."""
        session = requests.Session()
        if self.tls is not None:
            session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment would replace tls.ca
            session.verify = str(self.tls.ca)
            if self.tls.client_cert is not None and self.tls.client_key is not None:
                session.cert = (str(self.tls.client_cert), str(self.tls.client_key))
        if self.proxy is not None:
            session.trust_env = False
            session.proxies = {"http": self.proxy, "https": self.proxy}
        return session

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> DevProvider:
        """Install if needed, start the provider and wait until discovery answers."""
        with self._lock:
            if self.running:
                return self
            node = _require_tool("node")
            _check_node(node)
            installed = ensure_devprovider_installed(self.home)
            if self._workdir is None:
                self._workdir = Path(tempfile.mkdtemp(prefix="sso-devprovider-"))
            try:
                try:
                    self._launch(node, installed, port=self._port or self._requested_port)
                except DevProviderStartTimeout:
                    # Seen rarely on a loaded CI machine: a node process that never printed its ready
                    # line.  It is killed by then; a second launch has always come up within a second.
                    log.warning("devprovider: not ready within %s s; starting it once more", self.startup_timeout)
                    self._launch(node, installed, port=self._port or self._requested_port)
            except BaseException:
                self.stop()
                raise
            with _live_lock:
                _live.add(self)
            return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the provider (SIGTERM to its process group, SIGKILL after ``timeout``)."""
        with self._lock:
            self._terminate(timeout)
            with _live_lock:
                _live.discard(self)
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._http.close()
            self._http = self._new_session()

    def rotate_keys(self, *, keep_previous: bool = False) -> str:
        """Restart on the same port and issuer with a fresh RS256 signing key; return its kid.

        With ``keep_previous`` the JWKS still publishes the previous signing key (as
        providers do during a rotation); otherwise the old kid disappears at once.
        Static and registered clients keep their ids and secrets. In-memory state is
        lost: the provider's sessions (users must sign in again), grants, issued codes
        and tokens, and the event log.
        """
        with self._lock:
            if not self.running or self._workdir is None:
                raise DevProviderError("rotate_keys() needs a running provider")
            previous_kid = self.signing_kid
            previous_file: Path | None = None
            if keep_previous:
                old = json.loads(self._keys_file().read_text())
                previous_file = self._workdir / f"previous-{self._generation}.json"
                previous_file.write_text(json.dumps({"keys": old["keys"][:1]}))
            self._terminate(5.0)
            node = _require_tool("node")
            self._launch(node, ensure_devprovider_installed(self.home), port=self.port, previous_keys=previous_file)
            kid = self.signing_kid
            if kid == previous_kid:  # pragma: no cover - a fresh random kid every start
                raise DevProviderError("key rotation produced the same kid")
            return kid

    def __enter__(self) -> DevProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"issuer={self._issuer!r} pid={self.pid}" if self.running else "stopped"
        return f"<DevProvider {state}>"

    @property
    def running(self) -> bool:
        """Whether the node process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The node process id (also its process group id), or None when stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def issuer(self) -> str:
        """The issuer identifier, exactly as discovery advertises it."""
        if self._issuer is None:
            raise DevProviderError("the provider is not started")
        return self._issuer

    @property
    def port(self) -> int:
        """The TCP port the provider listens on."""
        if self._port is None:
            raise DevProviderError("the provider is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The provider's origin, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def discovery_url(self) -> str:
        """``issuer`` without trailing slash + ``/.well-known/openid-configuration``."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The provider's discovery document (fetched when it started)."""
        if self._discovery is None:
            raise DevProviderError("the provider is not started")
        return MappingProxyType(self._discovery)

    def endpoint(self, name: str) -> str:
        """A discovery endpoint by name, e.g. ``endpoint("token")`` -> ``token_endpoint``."""
        key = name if name.endswith(("_endpoint", "_uri")) else f"{name}_endpoint"
        try:
            return str(self.metadata[key])
        except KeyError:
            raise DevProviderError(f"discovery has no {key}") from None

    @property
    def signing_kid(self) -> str:
        """The ``kid`` of the key that signs ID tokens now."""
        return str(json.loads(self._keys_file().read_text())["keys"][0]["kid"])

    def jwks(self) -> dict[str, Any]:
        """The public JWKS as served at ``jwks_uri``."""
        response = self._http.get(self.endpoint("jwks_uri"), timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stdout_text(self) -> str:
        """What the provider process wrote to stdout (the ready line)."""
        return self._read_log("stdout")

    def stderr_text(self) -> str:
        """What the provider process wrote to stderr (warnings; requests with ``verbose``)."""
        return self._read_log("stderr")

    # --- clients, events ---------------------------------------------------------------

    def client(self, name: str) -> ClientCredentials:
        """A static or registered client by name/client_id."""
        if name in self.clients:
            return self.clients[name]
        for registered in self.registered_clients:
            if registered.client_id == name:
                return registered
        raise KeyError(name)

    def register_client(
        self,
        redirect_uris: Sequence[str],
        post_logout_redirect_uris: Sequence[str] = (),
        token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107 - not a password
        backchannel_logout_uri: str | None = None,
        *,
        backchannel_logout_session_required: bool = True,
        grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
        client_name: str | None = None,
        **metadata: Any,
    ) -> ClientCredentials:
        """Register a confidential first-party client (RFC 7591) and return its credentials.

        Extra keyword arguments are sent as further client metadata. The client survives
        ``rotate_keys()`` with the same id and secret.
        """
        body: dict[str, Any] = {
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "token_endpoint_auth_method": token_endpoint_auth_method,
            "grant_types": list(grant_types),
            "response_types": ["code"],
            **metadata,
        }
        if client_name is not None:
            body["client_name"] = client_name
        if backchannel_logout_uri is not None:
            body["backchannel_logout_uri"] = backchannel_logout_uri
            body["backchannel_logout_session_required"] = backchannel_logout_session_required
        response = self._http.post(
            self.endpoint("registration"),
            json=body,
            headers={"Authorization": f"Bearer {self.registration_token}"},
            timeout=10,
        )
        if response.status_code != 201:
            raise DevProviderError(f"client registration failed: HTTP {response.status_code} {response.text[:500]}")
        registered = {k: v for k, v in response.json().items() if k not in _REGISTRATION_ONLY}
        credentials = ClientCredentials.from_metadata(registered)
        with self._lock:
            self.registered_clients.append(credentials)
        return credentials

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The provider's event log, oldest first, optionally only events of one type.

        Types: ``authorize``, ``interaction``, ``login``, ``authorization_response``,
        ``token``, ``userinfo``, ``end_session``, ``end_session_confirm``,
        ``backchannel_logout``, ``registration``, ``pushed_authorization`` (fields: see server.mjs).
        """
        params = {"type": event_type} if event_type else None
        response = self._http.get(f"{self.base_url}/_dev/events", params=params, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def clear_events(self) -> None:
        """Empty the provider's event log."""
        self._http.delete(f"{self.base_url}/_dev/events", timeout=10).raise_for_status()

    # --- browser-like helpers -----------------------------------------------------------

    def is_provider_url(self, url: str) -> bool:
        """Whether ``url`` points at the provider's origin."""
        parts, own = urlsplit(url), urlsplit(self.issuer)
        return (parts.scheme, parts.netloc.lower()) == (own.scheme, own.netloc.lower())

    def login(
        self,
        http_session: requests.Session,
        user: str | DevUser = "alice",
        start_url: str | None = None,
        *,
        response: requests.Response | None = None,
        password: str | None = None,
        otp: str | None = None,
        follow_to_client: bool = False,
        max_steps: int = 30,
        timeout: float = 10.0,
    ) -> requests.Response:
        """Sign ``user`` in like a browser would, and return where it ended.

        Starts with ``GET start_url`` (an authorization URL, or an application URL that
        redirects to the provider) — or, without ``start_url``, continues from
        ``response`` (e.g. a redirect or a login page already fetched with the same
        session). Redirects are followed one by one with ``http_session`` (which keeps the
        cookies). On the provider's login form the user's credentials are submitted once
        (``password`` overrides the known one, for wrong-password tests). ``otp`` is sent
        as the form's one-time code when given: ``DEV_OTP`` makes it a multi-factor login
        (acr ``ACR_MFA``, amr ``["pwd", "otp"]``), without it the login is password-only
        (acr ``ACR_PWD``), any other non-empty code fails like a wrong password. The form
        is also shown when the session's acr is not among the request's ``acr_values`` or
        its ``auth_time`` is older than ``max_age``.

        Returns the first redirect that leaves the provider's origin after the provider
        has been visited — usually the 303 to the client's ``redirect_uri`` carrying
        ``code``/``state``/``iss`` or ``error`` — without following it. With
        ``follow_to_client=True`` that redirect is followed too (to a real HTTP
        application) until a non-redirect response. If the credentials are wrong the
        returned response is the login form again (200, ``id="error"`` in it). Silent
        flows (an existing provider session, ``prompt=none``) never show the form.
        The provider's self-submitting pages are submitted like a browser with JavaScript
        would (signing in as another user than the session's first ends the old provider
        session that way); a ``response_mode=form_post`` page addressed to the client is
        returned as is unless ``follow_to_client``.
        """
        account = user if isinstance(user, DevUser) else self.users.get(user)
        username = user.username if isinstance(user, DevUser) else user
        secret = password if password is not None else (account.password if account else None)
        if secret is None:
            raise DevProviderError(f"unknown user {username!r}: pass password=")
        if start_url is not None:
            current = http_session.get(start_url, allow_redirects=False, timeout=timeout)
        elif response is not None:
            current = response
        else:
            raise DevProviderError("login() needs start_url or response")
        submitted = False
        for _ in range(max_steps):
            if current.status_code in _REDIRECT_CODES and "Location" in current.headers:
                if self._left_provider(current) and not follow_to_client:
                    return current
                target = urljoin(current.url, current.headers["Location"])
                current = http_session.get(target, allow_redirects=False, timeout=timeout)
                continue
            if not self.is_provider_url(current.url):
                return current
            auto = _auto_submit_form(current)
            if auto is not None:  # e.g. the provider ending the old session on an account switch
                action = urljoin(current.url, auto.attrs.get("action", ""))
                if not self.is_provider_url(action) and not follow_to_client:
                    return current  # response_mode=form_post back to the client
                current = http_session.post(action, data=auto.fields, allow_redirects=False, timeout=timeout)
                continue
            form = _form_by_id(current, "login-form")
            if form is None or submitted:
                return current
            data = {"login": username, "password": secret}
            if otp is not None:
                data["otp"] = otp
            current = http_session.post(
                urljoin(current.url, form.attrs.get("action", "")),
                data=data,
                allow_redirects=False,
                timeout=timeout,
            )
            submitted = True
        raise DevProviderError(f"login() did not finish within {max_steps} steps (at {current.url})")

    def cancel_login(
        self, http_session: requests.Session, response: requests.Response, *, timeout: float = 10.0
    ) -> requests.Response:
        """Press "Cancel" on a login form ``response``: returns the provider's redirect to
        the client carrying ``error=access_denied`` (not followed)."""
        form = _form_by_id(response, "abort-form")
        if form is None:
            raise DevProviderError(f"no login form to cancel at {response.url}")
        current = http_session.post(
            urljoin(response.url, form.attrs.get("action", "")), allow_redirects=False, timeout=timeout
        )
        while current.status_code in _REDIRECT_CODES and not self._left_provider(current):
            current = http_session.get(
                urljoin(current.url, current.headers["Location"]), allow_redirects=False, timeout=timeout
            )
        return current

    def logout_confirm(
        self,
        http_session: requests.Session,
        response: requests.Response | str,
        *,
        logout: bool = True,
        follow_to_client: bool = False,
        timeout: float = 10.0,
    ) -> requests.Response:
        """Answer the provider's RP-initiated logout confirmation like a browser.

        ``response`` is the logout page, a redirect leading to it (e.g. the application's
        logout response), or the end-session URL itself. Posts the form's hidden ``xsrf``
        plus ``logout=yes`` ("Yes, sign me out": ends the provider session and sends
        back-channel logouts) or, with ``logout=False``, without it ("No, stay signed
        in": only this client's authorization is dropped). Returns the first redirect
        leaving the provider (to ``post_logout_redirect_uri``, with ``state``), or the
        provider's own "signed out" page when no redirect URI was given.
        """
        if isinstance(response, str):
            current = http_session.get(response, allow_redirects=False, timeout=timeout)
        else:
            current = response
        for _ in range(30):
            if current.status_code in _REDIRECT_CODES and "Location" in current.headers:
                current = self._follow(http_session, current, True, timeout)
                continue
            break
        form = _form_by_id(current, "op.logoutForm")
        if form is None:  # no session at the provider: an auto-submitting form
            form = next(
                (f for f in _forms(current) if f.attrs.get("action", "").endswith("/logout/confirm")),
                None,
            )
        if form is None:
            raise DevProviderError(f"no logout confirmation form at {current.url} (HTTP {current.status_code})")
        data = dict(form.fields)
        data.pop("logout", None)
        if logout:
            data["logout"] = "yes"
        current = http_session.post(
            urljoin(current.url, form.attrs.get("action", "")), data=data, allow_redirects=False, timeout=timeout
        )
        for _ in range(30):
            if current.status_code not in _REDIRECT_CODES or "Location" not in current.headers:
                return current
            if self._left_provider(current) and not follow_to_client:
                return current
            current = self._follow(http_session, current, True, timeout)
        return current

    # --- internals ----------------------------------------------------------------------

    def _left_provider(self, response: requests.Response) -> bool:
        target = urljoin(response.url, response.headers.get("Location", ""))
        return self.is_provider_url(response.url) and not self.is_provider_url(target)

    def _follow(
        self, http_session: requests.Session, response: requests.Response, follow_out: bool, timeout: float
    ) -> requests.Response:
        """Follow one redirect unless it leaves the provider and ``follow_out`` is false."""
        if self._left_provider(response) and not follow_out:
            return response
        target = urljoin(response.url, response.headers["Location"])
        return http_session.get(target, allow_redirects=False, timeout=timeout)

    def _keys_file(self) -> Path:
        if self._workdir is None:
            raise DevProviderError("the provider is not started")
        return self._workdir / f"keys-{self._generation}.json"

    def _read_log(self, name: str) -> str:
        if self._workdir is None:
            return ""
        path = self._workdir / f"{name}-{self._generation}.log"
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def _launch(self, node: str, installed: Path, *, port: int, previous_keys: Path | None = None) -> None:
        assert self._workdir is not None
        self._generation += 1
        gen = self._generation
        clients = [dict(c.metadata) for c in (*self.clients.values(), *self.registered_clients)]
        clients_file = self._workdir / f"clients-{gen}.json"
        clients_file.write_text(json.dumps(clients, indent=2))
        clients_file.chmod(0o600)
        issuer_host = f"[{self.host}]" if ":" in self.host else self.host
        # "--name=value": parseArgs refuses a separate value starting with "-" (random tokens may)
        options = {
            "host": self.host,
            "port": str(port),
            "clients": str(clients_file),
            "write-keys": str(self._workdir / f"keys-{gen}.json"),
            "registration-token": self.registration_token,
            "access-token-ttl": str(self.access_token_ttl),
            "id-token-ttl": str(self.id_token_ttl),
        }
        scheme = "https" if self.tls is not None else "http"
        if self.trailing_slash:
            options["issuer"] = f"{scheme}://{issuer_host}:{{port}}/"
        if self.tls is not None:
            options["tls-cert"], options["tls-key"] = str(self.tls.cert), str(self.tls.key)
            if self.tls.client_ca is not None:
                options["tls-client-ca"] = str(self.tls.client_ca)
        if previous_keys is not None:
            options["previous-keys"] = str(previous_keys)
        command = [node, str(installed / "server.mjs"), "--watch-stdin"]
        command += [f"--{name}={value}" for name, value in options.items()]
        command += [f"--allow-peer={peer}" for peer in self.allow_peers]
        if self.verbose:
            command.append("--verbose")
        if self.require_pushed_authorization:
            command.append("--require-pushed-authorization")
        stdout_path = self._workdir / f"stdout-{gen}.log"
        stderr_path = self._workdir / f"stderr-{gen}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVPROVIDER_")}
        env.setdefault("NODE_ENV", "development")
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
                command,
                cwd=installed,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready(stdout_path)
        except BaseException:
            self._terminate(2.0)
            raise

    def _wait_ready(self, stdout_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        ready: re.Match[str] | None = None
        last_error = "no ready line yet"
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise DevProviderError(
                    f"the devprovider exited early with code {code}; stderr:\n{self.stderr_text()[-4000:]}"
                )
            if ready is None:
                ready = _READY_RE.search(stdout_path.read_text(errors="replace"))
            if ready is not None:
                issuer, port = ready.group("issuer"), int(ready.group("port"))
                url = issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    answer = self._http.get(url, timeout=2)
                    if answer.status_code == 200:
                        document: dict[str, Any] = answer.json()
                        if document.get("issuer") != issuer:
                            raise DevProviderError(
                                f"discovery says issuer {document.get('issuer')!r}, expected {issuer!r}"
                            )
                        self._issuer, self._port, self._discovery = issuer, port, document
                        return
                    last_error = f"discovery answered HTTP {answer.status_code}"
                except requests.RequestException as exc:
                    last_error = str(exc)
            time.sleep(0.05)
        raise DevProviderStartTimeout(
            f"the devprovider did not become ready within {self.startup_timeout} s ({last_error}); "
            f"stdout:\n{stdout_path.read_text(errors='replace')[-2000:]}\nstderr:\n{self.stderr_text()[-4000:]}"
        )

    def _terminate(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(process, getattr(signal, "SIGKILL", signal.SIGTERM))
                process.wait(timeout)
        else:
            # the leader is gone; make sure nothing else of its group lingers
            self._signal(process, getattr(signal, "SIGKILL", signal.SIGTERM))

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
        if sys.platform != "win32":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signum)
        else:  # pragma: no cover
            with contextlib.suppress(OSError):
                process.send_signal(signum)


# ---------------------------------------------------------------------------------------
# pytest plugin

if importlib.util.find_spec("pytest") is not None:
    import pytest

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
