"""Tables (Markdown, readable in a terminal too), the targets' verdicts, and docs/performance.md."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Optional

from .growth import GrowthStep
from .inprocess import Contestant
from .profiling import Profile, SpyProfile
from .signin import CallbackResult, RoundTripResult
from .throughput import ThroughputResult


def table(headers: list[str], rows: list[list[str]], align: Optional[str] = None) -> str:
    """A Markdown table padded to equal widths; ``align`` is one of l/r per column."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        padded = [str(cell).ljust(w) if a == "l" else str(cell).rjust(w) for cell, w, a in zip(cells, widths, align)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def pct(ratio: float) -> str:
    if ratio is None or math.isnan(ratio):
        return "–"
    return f"{ratio * 100:+.1f} %"


@dataclass
class Verdict:
    target: str
    measured: str
    holds: Optional[bool]


@dataclass
class Results:
    header: dict[str, str] = field(default_factory=dict)
    inprocess: list[Contestant] = field(default_factory=list)
    timer_overhead_ns: float = 0.0
    session_sizes: dict[str, int] = field(default_factory=dict)
    record_sizes: dict[str, int] = field(default_factory=dict)  # a stored record's bytes, by what it is
    throughput: Optional[ThroughputResult] = None
    callbacks: list[CallbackResult] = field(default_factory=list)
    round_trips: Optional[RoundTripResult] = None
    growth: list[GrowthStep] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def contestant(self, key: str) -> Optional[Contestant]:
        return next((c for c in self.inprocess if c.key == key), None)


# -- sections ------------------------------------------------------------------------------------


def inprocess_table(results: Results) -> str:
    rows = []
    by_key = {c.key: c for c in results.inprocess}
    for c in results.inprocess:
        s = c.summary
        assert s is not None
        reference = by_key.get(c.reference or "")
        versus = "–"
        if reference is not None and reference.summary is not None:
            delta = s.median - reference.summary.median
            versus = f"{pct(s.median / reference.summary.median - 1)} ({delta:+.1f} µs) vs {reference.key}"
        rows.append([f"`{c.key}` {c.label}", fmt(s.median, 2), f"{fmt(s.p25, 2)}–{fmt(s.p75, 2)}", fmt(s.p90, 2),
                     fmt(s.p99, 2), fmt(c.cpu_us, 1), f"{s.n:,}", versus])
    return table(["contestant", "median µs", "IQR µs", "p90 µs", "p99 µs", "CPU µs/req", "requests", "vs reference"],
                 rows, "lrrrrrrl")


def throughput_table(result: ThroughputResult) -> str:
    entries = result.by_key()
    bare = entries.get("bare")
    rows = []
    references = {"sso_anon": "bare", "apache": "bare", "sso_file": "apache", "sso_redis": "apache",
                  "sso_cookie": "apache", "flask_sso": "flask_authlib", "flask_authlib": "flask_plain"}
    for entry in result.entries:
        spread = f"{fmt(min(entry.rps), 0)}–{fmt(max(entry.rps), 0)}" if len(entry.rps) > 1 else "–"
        ref = entries.get(references.get(entry.key, ""))
        versus = "–"
        if ref is not None and ref.rps:
            versus = f"{entry.mean_rps / ref.mean_rps:.2f}× {ref.key}"
        of_bare = f"{entry.mean_rps / bare.mean_rps:.2f}" if bare and bare.rps else "–"
        rows.append([f"`{entry.key}` {entry.label}", fmt(entry.mean_rps, 0), spread,
                     fmt(statistics.median(entry.p50), 2) if entry.p50 else "–",
                     fmt(statistics.median(entry.p99), 2) if entry.p99 else "–",
                     fmt(entry.mean_cpu_us, 0), of_bare, versus, str(entry.errors)])
    out = table(["contestant", "req/s", "passes min–max", "p50 ms", "p99 ms", "server CPU µs/req", "× bare",
                 "vs", "errors"], rows, "lrrrrrrlr")
    for entry in result.entries:
        if entry.redis_cpu_us:
            per = entry.redis_cpu_per_request_us
            out += (f"\n\nRedis's own CPU time per `{entry.key}` request (`INFO cpu`, median of the passes): "
                    f"{fmt(per, 1)} µs, so one Redis core serves about {fmt(1e6 / per, 0)} signed-in requests "
                    "per second (the server CPU above does not include it).")
    return out


def callback_tables(callbacks: list[CallbackResult]) -> str:
    summary = table(
        ["callback handler, warm caches", "sign-ins", "CPU median µs", "CPU p90 µs", "CPU p99 µs", "wall median µs"],
        [[f"{cb.store} store", f"{cb.logins:,}", fmt(cb.cpu_us.median, 0), fmt(cb.cpu_us.p90, 0),
          fmt(cb.cpu_us.p99, 0), fmt(cb.wall_us.median, 0)] for cb in callbacks],
    )
    names: list[str] = []
    for cb in callbacks:
        names += [name for name, _median, _mean in cb.phases if name not in names]
    medians = [{name: median for name, median, _mean in cb.phases} for cb in callbacks]
    rows = [[name, *(fmt(m.get(name, float("nan")), 0) for m in medians)] for name in names]
    phases = table(["phase of the callback request (exclusive CPU, median µs)", *(cb.store for cb in callbacks)],
                   rows)
    return summary + "\n\n" + phases


def round_trip_table(trips: RoundTripResult) -> str:
    rows = [[name, fmt(ms, 2)] for name, ms in trips.hops]
    rows.append(["**whole round trip** (client wall time)", fmt(trips.total_ms.median, 2)])
    return table(["hop of `/auth/sso` (silent SSO, provider session exists)", "median ms"], rows) + (
        f"\n\n{trips.trips:,} round trips, p90 {fmt(trips.total_ms.p90, 2)} ms, p99 {fmt(trips.total_ms.p99, 2)} ms, "
        f"{trips.failures} failed."
    )


def growth_table(steps: list[GrowthStep]) -> str:
    rows = []
    for step in steps:
        rows.append([f"{step.sessions:,}", fmt(step.fill_seconds, 1), fmt(step.redis_memory_mb, 0),
                     fmt(step.bytes_per_session, 0), fmt(step.inprocess_us.median, 1),
                     fmt(step.inprocess_us.p90, 1), fmt(step.inprocess_cpu_us, 1), fmt(step.rps, 0),
                     f"{fmt(step.rps_min, 0)}–{fmt(step.rps_max, 0)}",
                     fmt(step.p50_ms, 2), fmt(step.p99_ms, 2), fmt(step.redis_cpu_us, 1),
                     fmt(step.rss_start_mib, 1), fmt(step.rss_end_mib, 1), f"{step.distinct:,}", str(step.errors)])
    out = table(["sessions in Redis", "fill s", "Redis MiB", "B/session", "in-process median µs", "p90 µs",
                 "CPU µs/req", "req/s",
                 "passes min–max", "p50 ms", "p99 ms", "Redis CPU µs/req", "worker RSS MiB before", "after",
                 "distinct cookies sent", "errors"], rows)
    if steps:
        out += (f"\n\nRecords as stored in Redis: a sealed session record {steps[0].record_bytes:,} B, a sealed index "
                f"member {steps[0].index_member_bytes:,} B (two index sets per session: its `sid`'s and its `sub`'s).")
    return out


def profile_tables(profile: Profile) -> str:
    steps = table(["step (inclusive)", "calls/req", "share", "≈ µs of the median"],
                  [[step.label, fmt(step.calls_per_request, 1), f"{step.share * 100:.1f} %", fmt(step.estimate_us, 1)]
                   for step in profile.steps], "lrrr")
    components = table(["where the self time goes", "share"],
                       [[name, f"{share * 100:.1f} %"] for name, share in profile.components])
    top = table(["function (self time)", "share"],
                [[f"`{name}`", f"{share * 100:.1f} %"] for name, share in profile.top])
    return f"**{profile.label}** (median {fmt(profile.median_us, 1)} µs unprofiled)\n\n{steps}\n\n{components}\n\n{top}"


def spy_tables(spy: SpyProfile) -> str:
    components = table(["where a worker's time goes (self)", "share"],
                       [[name, f"{share * 100:.1f} %"] for name, share in spy.components])
    inclusive = table(["function (inclusive)", "share"],
                      [[f"`{name}`", f"{share * 100:.1f} %"] for name, share in spy.inclusive])
    top = table(["function (self)", "share"], [[f"`{name}`", f"{share * 100:.1f} %"] for name, share in spy.top_self])
    return f"**{spy.label}**, {spy.samples:,} samples\n\n{components}\n\n{inclusive}\n\n{top}"


# -- the targets ----------------------------------------------------------------------------------


#: Issue 16's targets: signed-in throughput against the bare app, in-process cost against Beaker's floor, the
#: callback's CPU, and growth.
THROUGHPUT_VS_BARE = {"sso_file": 0.75, "sso_cookie": 0.75, "sso_redis": 0.65}
INPROCESS_VS_FLOOR = {"file": ("sso_file", "floor_file"), "Redis": ("sso_redis", "floor_redis")}
INPROCESS_RATIO = 0.6
CALLBACK_MS = 1.2
GROWTH_LATENCY = 0.15
GROWTH_RSS_MIB = 2.0


def verdicts(results: Results) -> list[Verdict]:
    out: list[Verdict] = []
    c = results.contestant
    for store, (sso_key, floor_key) in INPROCESS_VS_FLOOR.items():
        sso, floor = c(sso_key), c(floor_key)
        if sso and floor and sso.summary and floor.summary:
            ratio = sso.summary.median / floor.summary.median
            out.append(Verdict(
                f"signed-in in-process cost ≤ {INPROCESS_RATIO}× Beaker's read-only SessionMiddleware reading the "
                f"same record ({store})",
                f"{fmt(sso.summary.median, 1)} vs {fmt(floor.summary.median, 1)} µs: {ratio:.2f}×; CPU "
                f"{fmt(sso.cpu_us, 1)} vs {fmt(floor.cpu_us, 1)} µs: {sso.cpu_us / floor.cpu_us:.2f}×",
                ratio <= INPROCESS_RATIO,
            ))
    sso, floor = c("sso_cookie"), c("floor_cookie")
    if sso and floor and sso.summary and floor.summary:
        ratio = sso.summary.median / floor.summary.median - 1
        out.append(Verdict(
            "signed-in pass-through ≤ +10 % over Beaker SessionMiddleware alone (encrypted cookie)",
            f"{fmt(sso.summary.median, 1)} µs vs {fmt(floor.summary.median, 1)} µs: {pct(ratio)}",
            ratio <= 0.10,
        ))
    anon, bare = c("anon"), c("bare")
    if anon and bare and anon.summary and bare.summary:
        ratio = anon.summary.median / bare.summary.median - 1
        out.append(Verdict(
            "anonymous pass-through within 5 % of the bare app (in-process)",
            f"{fmt(anon.summary.median, 2)} µs vs {fmt(bare.summary.median, 2)} µs: {pct(ratio)} "
            f"({anon.summary.median - bare.summary.median:+.2f} µs)",
            ratio <= 0.05,
        ))
    tp = results.throughput
    if tp is not None:
        e = tp.by_key()
        for key, floor_ratio in THROUGHPUT_VS_BARE.items():
            if key in e and "bare" in e:
                mine, bare_entry = e[key], e["bare"]
                ratio = mine.mean_rps / bare_entry.mean_rps
                errors = mine.errors + bare_entry.errors
                out.append(Verdict(
                    f"signed-in throughput ≥ {floor_ratio}× the bare app, 0 errors ({mine.label})",
                    f"{fmt(mine.mean_rps, 0)} vs {fmt(bare_entry.mean_rps, 0)} req/s: {ratio:.2f}×; server CPU per "
                    f"request {fmt(mine.mean_cpu_us, 0)} vs {fmt(bare_entry.mean_cpu_us, 0)} µs "
                    f"(bare/mine {bare_entry.mean_cpu_us / mine.mean_cpu_us:.2f}×); {errors} errors",
                    ratio >= floor_ratio and errors == 0,
                ))
        if "sso_anon" in e and "bare" in e and anon and bare and anon.summary and bare.summary:
            added = anon.summary.median - bare.summary.median
            share = added / e["bare"].mean_cpu_us
            cpu = e["sso_anon"].mean_cpu_us / e["bare"].mean_cpu_us - 1
            out.append(Verdict(
                "anonymous pass-through within 5 % of the bare app, served by gunicorn (the µs it adds "
                "in-process over a bare request's server CPU)",
                f"{added:.2f} µs of {fmt(e['bare'].mean_cpu_us, 0)} µs: {pct(share)}; measured directly, within the "
                f"load test's noise: server CPU {fmt(e['sso_anon'].mean_cpu_us, 0)} vs {fmt(e['bare'].mean_cpu_us, 0)} "
                f"µs ({pct(cpu)}), {fmt(e['sso_anon'].mean_rps, 0)} vs {fmt(e['bare'].mean_rps, 0)} req/s "
                f"({pct(e['sso_anon'].mean_rps / e['bare'].mean_rps - 1)})",
                share <= 0.05,
            ))
        for key in ("sso_file", "sso_redis"):
            if key in e and "apache" in e:
                out.append(_versus(e[key], e["apache"], f"signed-in throughput ({e[key].label}) ≥ Apache + "
                                   "mod_auth_openidc", strict=False))
            if key in e and "flask_authlib" in e:
                out.append(_versus(e[key], e["flask_authlib"], f"signed-in throughput ({e[key].label}) > Flask + "
                                   "Authlib", strict=True))
        if "flask_sso" in e and "flask_authlib" in e:
            out.append(_versus(e["flask_sso"], e["flask_authlib"],
                               "same Flask app: SSOMiddleware (file) > Authlib (like for like)", strict=True))
    for cb in results.callbacks:
        out.append(Verdict(f"callback handler CPU ≤ {CALLBACK_MS} ms median with warm caches ({cb.store} store)",
                           f"median {fmt(cb.cpu_us.median / 1000, 2)} ms, p90 {fmt(cb.cpu_us.p90 / 1000, 2)} ms",
                           cb.cpu_us.median <= CALLBACK_MS * 1000))
    if results.callbacks:
        cb = results.callbacks[0]
        out.append(Verdict(f"discovery and JWKS fetched once per process ({cb.logins:,} logins, fake provider)",
                           f"discovery {cb.discovery_fetches}, JWKS {cb.jwks_fetches}",
                           cb.discovery_fetches == 1 and cb.jwks_fetches == 1))
    if results.round_trips is not None:
        rt = results.round_trips
        out.append(Verdict(f"discovery and JWKS fetched once per process ({rt.trips:,} real /auth/sso sign-ins)",
                           f"discovery {rt.discovery_fetches}, JWKS {rt.jwks_fetches}",
                           rt.discovery_fetches == 1 and rt.jwks_fetches == 1))
    if len(results.growth) >= 2:
        small, large = results.growth[0], results.growth[-1]
        latency = large.inprocess_us.median / small.inprocess_us.median - 1
        served = large.p50_ms / small.p50_ms - 1 if small.p50_ms else float("nan")
        rss = large.rss_end_mib - small.rss_end_mib
        out.append(Verdict(
            f"flat from {small.sessions:,} to {large.sessions:,} sessions in Redis (median latency within "
            f"+{GROWTH_LATENCY * 100:.0f} %, worker RSS within {GROWTH_RSS_MIB:g} MiB)",
            f"in-process median {pct(latency)}, served p50 {pct(served)}, req/s {pct(large.rps / small.rps - 1)}, "
            f"worker RSS {rss:+.1f} MiB; {large.errors + small.errors} errors",
            latency <= GROWTH_LATENCY and abs(rss) <= GROWTH_RSS_MIB,
        ))
    return out


def _versus(mine: Any, theirs: Any, target: str, strict: bool) -> Verdict:
    ratio = mine.mean_rps / theirs.mean_rps
    cpu = mine.mean_cpu_us / theirs.mean_cpu_us
    return Verdict(
        target,
        f"{fmt(mine.mean_rps, 0)} vs {fmt(theirs.mean_rps, 0)} req/s: {ratio:.2f}×; server CPU per request "
        f"{fmt(mine.mean_cpu_us, 0)} vs {fmt(theirs.mean_cpu_us, 0)} µs: {cpu:.2f}×",
        ratio > 1.0 if strict else ratio >= 1.0,
    )


def sizing_lines(results: Results) -> list[str]:
    """The figures a deployment is sized with: Redis memory and CPU per session and request, records' sizes."""
    lines = []
    if results.growth:
        large = results.growth[-1]
        lines.append(f"Redis memory per session: {fmt(large.bytes_per_session, 0)} B (`used_memory` before and after "
                     f"{large.sessions:,} sessions, each a sealed record and its two index entries, with their TTLs): "
                     f"about {fmt(2**30 / large.bytes_per_session, 0)} sessions per GiB.")
    tp = results.throughput
    redis_entry = tp.by_key().get("sso_redis") if tp is not None else None
    cpus = []
    if redis_entry is not None and redis_entry.redis_cpu_us:
        cpus.append(f"{fmt(redis_entry.redis_cpu_per_request_us, 1)} µs with one session (the throughput test)")
    for step in results.growth:
        cpus.append(f"{fmt(step.redis_cpu_us, 1)} µs with {step.sessions:,} sessions")
    if cpus:
        best = redis_entry.redis_cpu_per_request_us if redis_entry is not None and redis_entry.redis_cpu_us \
            else results.growth[-1].redis_cpu_us
        lines.append(f"Redis CPU per signed-in request (`INFO cpu`): {'; '.join(cpus)}: one Redis core serves about "
                     f"{fmt(1e6 / best, 0)} signed-in requests per second.")
    sizes = dict(results.record_sizes)
    if results.growth:
        sizes["Redis session record (sealed)"] = results.growth[0].record_bytes
        sizes["Redis index member (sealed; two per session)"] = results.growth[0].index_member_bytes
    for key, label in (("sso_file", "file-store session cookie"), ("sso_cookie", "cookie-store cookie")):
        if key in results.session_sizes:
            sizes[label] = results.session_sizes[key]
    if sizes:
        lines.append("Sizes: " + ", ".join(f"{label} {size:,} B" for label, size in sizes.items()) + ".")
    return lines


def verdict_table(items: list[Verdict]) -> str:
    mark = {True: "holds", False: "**does not hold**", None: "–"}
    return table(["target", "measured", "verdict"], [[v.target, v.measured, mark[v.holds]] for v in items], "lll")


# -- the document ---------------------------------------------------------------------------------


def render(results: Results, analysis: str) -> str:
    h = results.header
    parts = [
        "# Performance",
        "",
        f"Generated by `make bench` (`python -m bench.run{h.get('args', '')}`) on {h['date']}; every table below "
        "comes from that one run. Do not edit by hand: run it again.",
        "",
        "## Machine and software",
        "",
        table(["", ""], [[key, value] for key, value in h.items() if key not in ("date", "args")], "ll"),
        "",
        "## Targets",
        "",
        verdict_table(verdicts(results)),
        "",
    ]
    sizing = sizing_lines(results)
    if sizing:
        parts += ["## Sizing figures", "", *[f"- {line}" for line in sizing], ""]
    if analysis:
        parts += [analysis, ""]
    if results.inprocess:
        sizes = ", ".join(f"`{key}` {size:,} B" for key, size in results.session_sizes.items())
        parts += [
            "## 1. In-process cost per request",
            "",
            "Each request timed on its own (`perf_counter_ns` around the WSGI call and its body; the timer's own "
            f"{results.timer_overhead_ns:.0f} ns subtracted), contestants interleaved in shuffled rounds after a "
            "warm-up, each checked to answer `200 hello alice` (signed in) or `hello anonymous` before and after. "
            "The floors are Beaker's `SessionMiddleware` with the middleware's own Beaker options "
            "(`save_accessed_time=False`: read-only) reading **the same session record** the middleware wrote at "
            "sign-in (alice's claims and ID token from the bundled provider), so both load the same bytes; the floor "
            "app reads `session['user']` so the session is really loaded. `beaker_default_file` is the same with "
            "Beaker's default `save_accessed_time=True`, which rewrites the record on every request. "
            f"Cookie sizes: {sizes}.",
            "",
            inprocess_table(results),
            "",
        ]
    if results.throughput is not None:
        parts += [
            "## 2. Throughput under gunicorn",
            "",
            f"{results.throughput.settings}. Every signed-in contestant signed alice in for real against the bundled "
            "provider; wrk sends only the session cookie. *Server CPU µs/req* is the CPU time of the server's "
            "processes (for Apache: httpd **and** its gunicorn backend) divided by the requests served; it is the "
            "fairer cost figure on a 2-core machine whose load generator shares the cores.",
            "",
            throughput_table(results.throughput),
            "",
            *[f"- {note}" for note in results.throughput.notes],
        ]
    if results.callbacks or results.round_trips is not None:
        parts += ["## 3. Sign-in cost", ""]
        if results.callbacks:
            parts += [
                "The callback request, in-process, the provider behind a "
                "fake `requests` transport (real RS256 keys, PKCE and client authentication checked; the ID token is "
                "signed before the callback starts). The first sign-ins warm discovery and the JWKS and are left out. "
                "CPU time is the thread's CPU clock; each phase's time excludes the phases it calls; the provider's "
                "own time is its own phase, left out of the CPU total.",
                "",
                callback_tables(results.callbacks),
                "",
            ]
        if results.round_trips is not None:
            parts += [
                "The full `/auth/sso?connection=…&target_url=/` round trip against the bundled provider (real HTTP; "
                "the middleware served by a WSGI server in the benchmark's process, whose provider fetches are "
                "counted), after one interactive sign-in, so every trip is a silent single sign-on "
                "(`prompt=none`): app → provider `/authorize` → app callback (code exchange, userinfo) → target.",
                "",
                round_trip_table(results.round_trips),
                "",
            ]
    if results.growth:
        parts += [
            "## 4. Growth: many sessions in Redis",
            "",
            "alice's real session record, refreshed with the store's own code, copied under random ids (with the "
            "store's TTL) into one Redis server per size. In-process: 3,000 requests per size over random "
            "sessions, the sizes interleaved in batches of 100. Served: a gunicorn server per size, wrk sending a "
            "random session cookie per request (Lua), the two servers' passes alternating; req/s and latency are "
            "medians of the passes; worker RSS (mean of the workers) before and after all passes. The verdict "
            "uses the in-process latency (thousands of interleaved requests) and the RSS; the served figures move "
            "with the machine's other load.",
            "",
            growth_table(results.growth),
            "",
        ]
    if results.profiles or (results.throughput is not None and results.throughput.spy is not None):
        parts += [
            "## 5. Where the time goes",
            "",
            "In-process: cProfile over signed-in requests. cProfile charges every Python call a fixed cost, so "
            "shares lean towards code making many small calls; *≈ µs* is the share times the unprofiled median.",
            "",
        ]
        for profile in results.profiles:
            parts += [profile_tables(profile), ""]
        if results.throughput is not None and results.throughput.spy is not None:
            parts += ["Under load: py-spy sampling the gunicorn workers of `sso_file` (then `sso_cookie`, "
                      "`sso_redis`) while wrk loads them.", "", spy_tables(results.throughput.spy), ""]
            for spy in results.throughput.more_spies:
                parts += [spy_tables(spy), ""]
    if results.notes:
        parts += ["## Notes", "", *[f"- {note}" for note in results.notes], ""]
    return "\n".join(parts).rstrip() + "\n"


def terminal_summary(results: Results) -> str:
    h = results.header
    parts = ["", f"load average at start {h.get('load average at start', '?')}, at end "
                 f"{h.get('load average at end', '?')} (2 CPUs shared with other work: prefer the ratios and the "
                 "CPU per request)", "", "== targets ==", verdict_table(verdicts(results))]
    sizing = sizing_lines(results)
    if sizing:
        parts += ["", "== sizing ==", *sizing]
    if results.inprocess:
        parts += ["", "== 1. in-process µs per request ==", inprocess_table(results)]
    if results.throughput is not None:
        parts += ["", "== 2. throughput under gunicorn ==", results.throughput.settings,
                  throughput_table(results.throughput)]
    if results.callbacks:
        parts += ["", "== 3. sign-in: callback handler ==", callback_tables(results.callbacks)]
    if results.round_trips is not None:
        parts += ["", "== 3. sign-in: /auth/sso round trip ==", round_trip_table(results.round_trips)]
    if results.growth:
        parts += ["", "== 4. growth ==", growth_table(results.growth)]
    return "\n".join(parts)

