"""``DevProvider``: the bundled development OpenID Provider as a ``node`` child process.

It runs ``sso_middleware/devprovider`` -- the npm package ``oidc-provider`` (v9) configured
to behave like an Auth0 tenant for the parts sso_middleware relies on -- on a loopback
address, starts, restarts (key rotation) and stops it, registers clients dynamically,
and (:class:`~.admin.ProviderAdmin`) registers clients dynamically and reads its event
log, and (:class:`~.browser.ProviderBrowser`) drives its login and logout pages like a browser.

Security caveat: it is for tests on one machine. It listens on loopback only, keeps its
state in memory, its users' passwords are public, and its dynamic registration is
protected only by a random initial access token known to this process.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests

from .accounts import DEFAULT_CLIENTS, DEFAULT_RESOURCES, DEFAULT_USERS, ClientCredentials, DevUser, ProviderTLS
from .admin import ProviderAdmin
from .browser import ProviderBrowser
from .errors import DevProviderError, DevProviderStartTimeout
from .install import _check_node, _require_tool, ensure_devprovider_installed
from .process import spawn, terminate, track, untrack, wait_ready

__all__ = ["DevProvider"]

log = logging.getLogger("sso_middleware.testing")


class DevProvider(ProviderAdmin, ProviderBrowser):
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
        resources: the APIs (OAuth resource servers, Auth0's "APIs") access tokens can be asked
            for, replacing ``DEFAULT_RESOURCES``: identifier (an absolute URI) -> ``{"scopes":
            [...], "format": "jwt" | "opaque", "ttl": seconds}`` (``format`` defaults to
            ``"jwt"``, ``ttl`` to ``access_token_ttl``). An authorization request with
            ``audience=<identifier>`` (Auth0's parameter) or ``resource=<identifier>`` (RFC 8707),
            by a confidential or a public (PKCE, ``token_endpoint_auth_method`` ``none``) client,
            gets from the token endpoint an access token for that API: a JWT access token
            (RFC 9068: header ``typ`` ``at+jwt``, signed like ID tokens with a key of the JWKS;
            claims ``iss``, ``sub``, ``aud`` = the identifier, ``client_id``, ``scope`` = the
            requested scopes the API defines, ``iat``, ``exp``, ``jti``) or, with ``"opaque"``,
            an opaque token that the introspection endpoint (RFC 7662, for any confidential
            client) describes with that ``aud``. A token for an API is refused at userinfo.
            Without ``audience``/``resource`` the access token is the opaque userinfo token.
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
    ``base_url`` (the provider's origin), ``resources`` (identifier -> its settings), ``clients``
    (name -> ``ClientCredentials`` of the static clients), ``registered_clients``, ``users`` (name -> ``DevUser``),
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
        resources: Mapping[str, Mapping[str, Any]] | None = None,
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
        chosen = DEFAULT_RESOURCES if resources is None else resources
        self.resources: Mapping[str, Mapping[str, Any]] = MappingProxyType(
            {identifier: MappingProxyType(dict(spec)) for identifier, spec in chosen.items()}
        )
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
            track(self)
            return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the provider (SIGTERM to its process group, SIGKILL after ``timeout``)."""
        with self._lock:
            self._terminate(timeout)
            untrack(self)
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
            # What the port serves now, on a fresh connection: a test that sees a stale JWKS after
            # a rotation learns here whether the provider or the client behind it is at fault.
            with self._new_session() as fresh:
                answer = fresh.get(self.endpoint("jwks_uri"), timeout=10)
            served = [key.get("kid") for key in answer.json().get("keys", [])]
            if kid not in served or (previous_kid in served) != keep_previous:
                raise DevProviderError(
                    f"after the rotation to {kid!r} (previously {previous_kid!r}) the port serves kids {served!r}"
                )
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

    # --- internals ----------------------------------------------------------------------

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
        resources_file = self._workdir / f"resources-{gen}.json"
        resources_file.write_text(json.dumps({key: _json_ready(spec) for key, spec in self.resources.items()}))
        issuer_host = f"[{self.host}]" if ":" in self.host else self.host
        # "--name=value": parseArgs refuses a separate value starting with "-" (random tokens may)
        options = {
            "host": self.host,
            "port": str(port),
            "clients": str(clients_file),
            "resources": str(resources_file),
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
        self._process = spawn(command, installed, stdout_path, stderr_path)
        try:
            self._wait_ready(stdout_path)
        except BaseException:
            self._terminate(2.0)
            raise

    def _wait_ready(self, stdout_path: Path) -> None:
        assert self._process is not None
        self._issuer, self._port, self._discovery = wait_ready(
            self._process, stdout_path, self._http, self.startup_timeout, self.stderr_text
        )

    def _terminate(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout)


def _json_ready(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An API's settings as JSON for ``--resources`` (tuples of scopes become lists)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in spec.items()}
