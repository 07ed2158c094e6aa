"""Where the time of a signed-in request goes: cProfile in-process, py-spy on a gunicorn worker under load.

cProfile is deterministic and sees C functions (file system calls, zlib, HMAC) but
adds a fixed cost to every Python call, so its shares lean towards call-heavy code;
the tables therefore give shares of the profiled time and, as an estimate, that
share of the unprofiled median.  py-spy samples a real gunicorn worker from outside
while wrk loads it, without slowing the Python code it watches much.
"""

from __future__ import annotations

import cProfile
import importlib
import os
import pstats
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .inprocess import Contestant, sample


@dataclass
class Step:
    label: str
    calls_per_request: float
    share: float  # of the profiled time per request, inclusive
    estimate_us: float  # share x the unprofiled median


@dataclass
class Profile:
    label: str
    median_us: float
    steps: list[Step]
    components: list[tuple[str, float]]  # (component, share of self time)
    top: list[tuple[str, float]]  # (function, share of self time)


def _code_key(function: Callable[..., Any]) -> tuple[str, int, str]:
    code = function.__code__
    return (code.co_filename, code.co_firstlineno, code.co_name)


StepSpec = tuple[str, list[tuple[str, int, str]], list[tuple[str, int, str]]]


#: The step table, in call order: (label, functions added, functions subtracted) as "module:qualified.name";
#: inclusive times.  Functions the code no longer has are left out (the table follows the code as it changes).
STEPS: list[tuple[str, list[str], list[str]]] = [
    ("SSOMiddleware.__call__ (whole request, app included)", ["sso_middleware._wsgi.middleware:SSOMiddleware.__call__"],
     []),
    ("Beaker SessionMiddleware.__call__ (whole request, app included)",
     ["beaker.middleware:SessionMiddleware.__call__"], []),
    ("= the middleware's own code (request minus reading the session minus the app)",
     ["sso_middleware._wsgi.middleware:SSOMiddleware.__call__"],
     ["sso_middleware.stores.beaker:BeakerBackend.open_session", "bench.apps:bare_app"]),
    ("= Beaker SessionMiddleware's own code (request minus Session.__init__ minus the app)",
     ["beaker.middleware:SessionMiddleware.__call__"],
     ["beaker.session:Session.__init__", "beaker.session:CookieSession.__init__", "bench.apps:bare_app"]),
    ("own_cookie: pick our cookie out of the header", ["sso_middleware._session.state:own_cookie"], []),
    ("current_user's own checks (SignedInUser, timeouts, revocation)",
     ["sso_middleware._session.state:SSOSession.current_user"],
     ["sso_middleware.stores.beaker:BeakerBackend.open_session"]),
    ("BeakerBackend.open_session (read the session: directly, or by Beaker)",
     ["sso_middleware.stores.beaker:BeakerBackend.open_session"], []),
    ("  signed_part: the cookie's HMAC-SHA1 (the direct read)", ["sso_middleware.stores.direct:signed_part"], []),
    ("  read_record: the sealed record (file: one open and read; Redis: one GETRANGE)",
     ["sso_middleware.stores.file:FileBackend.read_record",
      "sso_middleware.stores.beaker:NamespaceRecords.read_record"], []),
    ("    RecordSeal.open (size, then HMAC-SHA256 over kind, key and record)",
     ["sso_middleware._sealing:RecordSeal.open"], []),
    ("  decoded: base64 + zlib + JSON (the direct read)", ["sso_middleware.stores.direct:decoded"], []),
    ("  CookieBackend.read_directly (HMAC, key derivation, AES-GCM, zlib + JSON)",
     ["sso_middleware.stores.cookie:CookieBackend.read_directly"], []),
    ("Beaker Session/CookieSession.__init__ (build and load the session)",
     ["beaker.session:Session.__init__", "beaker.session:CookieSession.__init__"], []),
    ("  SimpleCookie parsing (http.cookies) incl. the HMAC check", ["http.cookies:BaseCookie.load"], []),
    ("    SignedCookie.value_decode (HMAC-SHA1)", ["beaker.session:SignedCookie.value_decode"], []),
    ("  Session.load (read + decode the record)", ["beaker.session:Session.load"], []),
    ("    FileNamespaceManager.__init__ (paths, directory checks, lock object)",
     ["beaker.container:FileNamespaceManager.__init__"], []),
    ("    JsonRedisNamespace.__init__", ["sso_middleware.stores.redis:JsonRedisNamespace.__init__"], []),
    ("    read lock: lock file open + flock", ["beaker.synchronization:FileSynchronizer.do_acquire_read_lock"], []),
    ("    FileNamespaceManager.do_open (open + unpickle the file)", ["beaker.container:FileNamespaceManager.do_open"],
     []),
    ("    JsonRedisNamespace.__getitem__ (Redis GETRANGE + seal)",
     ["sso_middleware.stores.redis:JsonRedisNamespace.__getitem__"], []),
    ("      redis-py: the command's round trip (execute_command)", ["redis.client:Redis.execute_command"], []),
    ("    Session._decrypt_data (base64/AES + zlib + JSON)", ["beaker.session:Session._decrypt_data"], []),
    ("  CookieSession._create_cookie (re-encrypts the cookie on every load)",
     ["beaker.session:CookieSession._create_cookie"], []),
    ("SSOSession.commit (nothing to write)", ["sso_middleware._session.state:SSOSession.commit"], []),
    ("the app itself", ["bench.apps:bare_app"], []),
]


def _resolve(where: str) -> Optional[tuple[str, int, str]]:
    module_name, _, qualified = where.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualified.split("."):
            target = getattr(target, part)
        return _code_key(target)
    except (ImportError, AttributeError):
        return None


def hot_path_steps() -> list[StepSpec]:
    steps = []
    for label, plus, minus in STEPS:
        added = [key for key in map(_resolve, plus) if key is not None]
        if added:
            steps.append((label, added, [key for key in map(_resolve, minus) if key is not None]))
    return steps


_BUILTIN_GROUPS = [
    (re.compile(r"posix\.|io\.open|fcntl|_io\.|os\.|'__exit__' of '_io"),
     "file system calls (open, stat, access, flock, read)"),
    (re.compile(r"_socket|select|poll"), "socket I/O"),
    (re.compile(r"zlib|binascii|_pickle|json"), "decoding (zlib, base64, unpickle, JSON)"),
    (re.compile(r"_hashlib|_hmac|hmac"), "HMAC / hashing"),
    (re.compile(r"re\.Pattern|_sre"), "regular expressions"),
]


def component_of(filename: str, funcname: str) -> str:
    """A readable bucket for a function: our module, Beaker's module, a stdlib area, or a kind of C call."""
    if filename == "~" or filename.startswith("<built-in"):
        for pattern, name in _BUILTIN_GROUPS:
            if pattern.search(funcname):
                return name
        return "other C built-ins (dict, str, time, ...)"
    path = "/" + filename.replace(os.sep, "/").lstrip("/")
    for package in ("sso_middleware", "beaker", "redis", "webob", "gunicorn", "flask", "werkzeug", "authlib",
                    "itsdangerous", "jwt", "requests", "urllib3", "bench"):
        marker = f"/{package}/"
        if marker in path:
            module = path.rsplit(marker, 1)[1].removesuffix(".py").replace("/", ".")
            return f"{package}.{module}" if package in ("sso_middleware", "beaker") else package
    if "http/cookies.py" in path:
        return "http.cookies (stdlib cookie parser)"
    if "posixpath" in path or path.endswith(("os.py", "genericpath.py")):
        return "os.path (stdlib)"
    if "/json/" in path:
        return "decoding (zlib, base64, unpickle, JSON)"
    if path.endswith(("base64.py", "pickle.py")):
        return "decoding (zlib, base64, unpickle, JSON)"
    if path.endswith(("hmac.py", "hashlib.py")):
        return "HMAC / hashing"
    return "other stdlib: " + Path(path).stem


def profile_inprocess(contestant: Contestant, requests: int, median_us: float) -> Profile:
    """cProfile ``requests`` requests of one contestant; steps and components per request."""
    sample(contestant, 200)
    profiler = cProfile.Profile()
    profiler.enable()
    sample(contestant, requests)
    profiler.disable()
    contestant.samples.clear()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    sampler = _code_key(sample)
    total = stats[sampler][3] if sampler in stats else sum(entry[2] for entry in stats.values())
    steps = []
    for label, plus, minus in hot_path_steps():
        found = [stats[key] for key in plus if key in stats]
        if not found:
            continue
        cumulative = sum(entry[3] for entry in found) - sum(stats[key][3] for key in minus if key in stats)
        calls = sum(entry[1] for entry in found)
        share = cumulative / total
        steps.append(Step(label, calls / requests, share, share * median_us))
    components: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for (filename, lineno, funcname), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        if (filename, lineno, funcname) == sampler:
            continue
        components[component_of(filename, funcname)] += tottime
        short = funcname if filename == "~" else f"{Path(filename).name}:{lineno}({funcname})"
        functions[short] += tottime
    self_total = sum(components.values()) or 1.0
    return Profile(
        label=contestant.label,
        median_us=median_us,
        steps=steps,
        components=[(name, value / self_total) for name, value in components.most_common(12)],
        top=[(name, value / self_total) for name, value in functions.most_common(12)],
    )


# -- py-spy on a gunicorn worker ---------------------------------------------------------------


@dataclass
class SpyProfile:
    label: str
    samples: int
    components: list[tuple[str, float]]
    top_self: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]


_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>.+?):(?P<line>\d+)\)$")


def pyspy_binary() -> Optional[str]:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def pyspy_record(pid: int, seconds: float, out: Path, rate: int = 200) -> Optional[Path]:
    """``py-spy record`` a running process into collapsed stacks; None when py-spy cannot attach."""
    binary = pyspy_binary()
    if binary is None:
        return None
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", str(rate),
            "--gil", "--format", "raw", "--output", str(out)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0 or not out.exists():
        return None
    return out


def summarize_pyspy(label: str, path: Path) -> SpyProfile:
    """Self and inclusive shares by function, and self shares by component, from collapsed stacks."""
    components: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        names = []
        for frame in frames:
            match = _FRAME.match(frame)
            if match is None:
                names.append((frame, frame, ""))
                continue
            names.append((f"{match['func']} ({Path(match['file']).name})", match["func"], match["file"]))
        leaf = names[-1]
        self_time[leaf[0]] += count
        components[component_of(leaf[2] or "~", leaf[1])] += count
        for name in {name for name, _func, _file in names}:
            inclusive[name] += count
    total = total or 1
    return SpyProfile(
        label=label,
        samples=total,
        components=[(name, value / total) for name, value in components.most_common(12)],
        top_self=[(name, value / total) for name, value in self_time.most_common(12)],
        inclusive=[(name, value / total) for name, value in inclusive.most_common(40)
                   if any(key in name for key in ("middleware.py", "session.py", "stores.py", "stores/", "container.py",
                                                  "sync.py", "gthread.py", "wsgi.py", "message.py"))][:14],
    )
