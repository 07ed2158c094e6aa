"""Benchmarks of sso_middleware side by side with its peers; one command: ``make bench``.

    python -m bench.run [--quick] [--only SECTION ...] [--skip SECTION ...] [--output PATH | --no-write]

Sections: ``inprocess`` (µs per request), ``throughput`` (gunicorn + wrk, Apache +
mod_auth_openidc, Flask + Authlib), ``signin`` (callback CPU, /auth/sso round trips,
provider fetches), ``growth`` (1,000 vs 1,000,000 Redis sessions), ``profile``
(cProfile of the hot path; py-spy runs with ``throughput``).

It installs what it lacks (Debian packages ``wrk apache2 libapache2-mod-auth-openidc
redis-server nodejs npm`` when run as root; the ``bench`` extra with pip), starts the
bundled OpenID provider, Redis, gunicorn and Apache on free loopback ports, stops
them all at the end (also on errors and Ctrl-C), prints the tables and writes them
to ``docs/performance.md``.  A full run takes about five minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("inprocess", "throughput", "signin", "growth", "profile")
APACHE_MODULE = Path("/usr/lib/apache2/modules/mod_auth_openidc.so")
PYTHON_MODULES = {"flask": "flask", "authlib": "authlib", "gunicorn": "gunicorn", "redis": "redis"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- installing what is missing --------------------------------------------------------------


def missing_debian_packages() -> list[str]:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk")
    if not (shutil.which("apache2") or Path("/usr/sbin/apache2").exists()):
        missing.append("apache2")
    if not APACHE_MODULE.exists():
        missing.append("libapache2-mod-auth-openidc")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if shutil.which("node") is None:
        missing.append("nodejs")
    if shutil.which("npm") is None:
        missing.append("npm")
    return missing


def ensure_debian_packages() -> None:
    missing = missing_debian_packages()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"bench: please install the Debian packages {' '.join(missing)} "
                         f"(apt-get install -y {' '.join(missing)})")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, timeout=600)  # noqa: S607 - apt-get from PATH
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env, timeout=1200)  # noqa: S603,S607


def ensure_python_packages() -> None:
    missing = [name for name, module in PYTHON_MODULES.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return
    log(f"installing the bench extra with pip (missing: {', '.join(missing)})")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{REPO}[bench]"],  # noqa: S603
                   check=True, timeout=1200)
    importlib.invalidate_caches()


# -- facts about the machine -------------------------------------------------------------------


def _output(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return ""
    return (result.stdout + result.stderr).strip()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> str:
    commit = _output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "?"
    dirty = _output(["git", "-C", str(REPO), "status", "--porcelain", "--", "sso_middleware"])
    return f"git {commit}" + (", with uncommitted changes in sso_middleware/" if dirty else "")


def machine_facts(args: argparse.Namespace) -> dict[str, str]:
    lscpu = _output(["lscpu"])
    model = re.search(r"^Model name:\s+(.+)$", lscpu, re.MULTILINE)
    cpus = re.search(r"^CPU\(s\):\s+(\d+)", lscpu, re.MULTILINE)
    family = re.search(r"^CPU family:\s+(\S+)", lscpu, re.MULTILINE)
    number = re.search(r"^Model:\s+(\S+)", lscpu, re.MULTILINE)
    hypervisor = re.search(r"^Hypervisor vendor:\s+(\S+)", lscpu, re.MULTILINE)
    memory = ""
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        memory = f"{int(match.group(1)) / 2**20:.1f} GiB" if match else ""
    apache = re.search(r"Apache/(\S+)", _output(["/usr/sbin/apache2", "-v"]))
    openidc = _output(["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-auth-openidc"])
    redis_version = re.search(r"v=(\S+)", _output(["redis-server", "--version"]))
    wrk_version = re.search(r"wrk (\S+)", _output(["wrk", "--version"]))
    load = os.getloadavg()
    argv = " ".join(sys.argv[1:])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "args": f" {argv}" if argv else "",
        "CPU (lscpu)": f"{model.group(1).strip() if model else platform.processor() or '?'}"
                       + (f" (family {family.group(1)}, model {number.group(1)})" if family and number else "")
                       + f", {cpus.group(1) if cpus else os.cpu_count()} CPUs"
                       + (f", virtualised ({hypervisor.group(1)})" if hypervisor else ""),
        "memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "sso_middleware": f"{_version('sso_middleware')} ({git_state()})",
        "Python packages": ", ".join(f"{name} {_version(name)}" for name in (
            "Beaker", "WebOb", "PyJWT", "oauthlib", "requests", "redis", "gunicorn", "Flask", "Authlib", "py-spy")),
        "servers and tools": (
            f"Apache {apache.group(1) if apache else '?'} + mod_auth_openidc {openidc or '?'}, "
            f"Redis {redis_version.group(1) if redis_version else '?'}, "
            f"wrk {wrk_version.group(1) if wrk_version else '?'}, Node {_output(['node', '--version'])}"
        ),
        "load average at start": " ".join(f"{value:.2f}" for value in load),
    }


# -- the run ----------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmark itself)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], help="skip these sections")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), help="gunicorn worker class")
    parser.add_argument("--connections", type=int, help="wrk connections")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary folder (server logs)")
    return parser.parse_args(argv)


def _terminate_on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    ensure_debian_packages()
    ensure_python_packages()
    sys.path.insert(0, str(REPO))

    from sso_middleware.testing import DevProvider

    from . import growth, inprocess, profiling, report, servers, signin, throughput
    from .analysis import analysis
    from .context import Context, Options

    options = Options.quick_run() if args.quick else Options()
    if args.worker_class:
        options.worker_class = args.worker_class
    if args.connections:
        options.connections = args.connections
    if args.seconds:
        options.wrk_seconds = args.seconds
    sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    results = report.Results(header=machine_facts(args))
    signal.signal(signal.SIGTERM, _terminate_on_signal)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="sso-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            log("starting the bundled OpenID provider and Redis")
            provider = DevProvider(startup_timeout=60)
            provider.start()
            stack.callback(provider.stop)
            (tmp / "logs").mkdir()
            redis = servers.redis_server(stack, tmp / "logs")
            ctx = Context(REPO, tmp, stack, provider, redis, options)

            failures: list[str] = []

            def attempt(name: str, function: Any) -> Any:
                """Run one section; a failure is reported (and fails the run) without losing the others."""
                try:
                    return function()
                except Exception as exc:
                    log(f"{name} FAILED: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
                    failures.append(name)
                    results.notes.append(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}")
                    return None

            contestants: list[Any] = []
            if "inprocess" in sections or "profile" in sections:
                log("in-process: signing in every contestant")
                contestants = attempt("in-process sign-ins", lambda: inprocess.build(ctx)) or []
            if "inprocess" in sections and contestants:
                log(f"in-process: {len(contestants)} contestants, up to {options.inprocess_rounds} rounds")
                overhead = attempt("in-process", lambda: inprocess.measure(
                    contestants, rounds=options.inprocess_rounds, batch_seconds=options.inprocess_batch,
                    budget_seconds=options.inprocess_budget, notes=results.notes))
                if overhead is not None:
                    results.timer_overhead_ns = overhead
                    results.inprocess = contestants
                    results.session_sizes = inprocess.session_sizes(contestants)
                    results.record_sizes = inprocess.record_sizes(contestants)
            if "profile" in sections and contestants:
                log("profile: cProfile of the signed-in hot path")
                for contestant in contestants:
                    if contestant.key in ("sso_file", "floor_file", "sso_redis", "floor_redis", "sso_cookie"):
                        median = contestant.summary.median if contestant.summary else float("nan")
                        profile = attempt(f"profile of {contestant.key}",
                                          lambda c=contestant, m=median: profiling.profile_inprocess(c, 3000, m))
                        if profile is not None:
                            results.profiles.append(profile)
            if "throughput" in sections:
                log("throughput: starting gunicorn servers and Apache, signing in, running wrk")
                results.throughput = attempt("throughput", lambda: throughput.run(ctx))
            if "signin" in sections:
                for kind, logins in (("file", options.logins), ("ext:redis", options.callback_logins),
                                     ("cookie", options.callback_logins)):
                    log(f"sign-in: {logins} callbacks with a fake provider transport, {kind} store")
                    callback = attempt(f"callback ({kind})", lambda k=kind, n=logins: signin.callback_cpu(ctx, k, n))
                    if callback is not None:
                        results.callbacks.append(callback)
                log(f"sign-in: up to {options.round_trips} /auth/sso round trips against the bundled provider")
                results.round_trips = attempt("round trips", lambda: signin.round_trips(ctx))
            if "growth" in sections:
                log(f"growth: {', '.join(f'{n:,}' for n in options.growth_sizes)} sessions in Redis")
                results.growth = attempt("growth", lambda: growth.run(ctx)) or []
    finally:
        if args.keep_logs:
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results.header["load average at end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    results.header["duration of the run"] = f"{time.monotonic() - started:.0f} s"
    results.notes.extend(ctx.notes)
    print(report.terminal_summary(results), flush=True)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report.render(results, analysis(results)))
        log(f"wrote {args.output}")
    if failures:
        log(f"sections that failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every server it started has been stopped")
        sys.exit(130)
