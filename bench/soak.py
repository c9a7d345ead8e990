"""`make soak`: minutes of mixed valid, invalid and missing tokens against one Envoy with the
filter, every response checked against the decision expected, and Envoy's memory watched.

Four wrk processes run at once against the same Envoy (--concurrency 2):
  valid     1,000 distinct valid ID tokens (so the token cache both hits and evicts)  → 200
  access    1,000 distinct valid access tokens                                        → 200
  invalid   the ID tokens with a tampered signature, plus garbage                    → 401
  missing   no token                                                                  → 401
Then, in the same Envoy, a clock-skew phase: tokens whose `exp` lies a little in the past but
within `clock_skew_seconds` (which `verify` still accepts) — one hot token and 200 users, all
→ 200. Such a token used to be re-verified and re-inserted on every request, growing the
eviction queue without bound; the phase shows the cache hits and memory stays flat.
It reports requests, wrong decisions, 5xx and the Envoy process's resident memory (VmRSS) after
warm-up, at the end and at its highest (each phase), the filter's cache hits and misses, and
writes them to docs/soak.md. Exits 1 on any wrong decision or 5xx.

It runs once per build (SOAK_BUILDS, default "wasm native"): the .wasm in V8, then the native
module, where a leak would be Envoy's own memory with no VM in between.

Settings: SOAK_SECONDS=180 (after SOAK_WARMUP=20), SOAK_SKEW_SECONDS=90 (after 10 s warm-up;
0 skips the phase), SOAK_CACHE (token_cache.max_entries; unset: the default), ENVOY_BIN,
CEA_WASM, CEA_SO, SOAK_BUILDS. The provider's clock_skew_seconds is 300, and the skew-window tokens are minted just
before their phase with `exp` 30 s in the past.
"""

import datetime
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
import tokens  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "180"))
WARMUP = int(os.environ.get("SOAK_WARMUP", "20"))
SKEW_SECONDS = int(os.environ.get("SOAK_SKEW_SECONDS", "90"))
SKEW_WARMUP = 10
CLOCK_SKEW = 300  # the provider's clock_skew_seconds (the maximum)
SKEW_EXPIRED_AGO = 30  # the skew-window tokens' exp, seconds before they are minted
CACHE = os.environ.get("SOAK_CACHE", "")
LUA = os.path.join(tokens.ROOT, "bench", "wrk", "expect.lua")
DOC = os.path.join(tokens.ROOT, "docs", "soak.md")
CLASSES = [("valid", 200, 12), ("access", 200, 12), ("invalid", 401, 8), ("missing", 401, 8)]
BUILDS = os.environ.get("SOAK_BUILDS", "wasm native").split()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wrk(port, expected, connections, seconds, token_file):
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", LUA,
            f"http://127.0.0.1:{port}/", "--", str(expected)] + ([token_file] if token_file else [])
    return run.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(p, seconds):
    out, err = p.communicate(timeout=seconds + 60)
    for line in out.splitlines():
        if line.startswith("SOAK_JSON "):
            return json.loads(line[len("SOAK_JSON "):])
    raise RuntimeError(f"wrk printed no SOAK_JSON line:\n{out}\n{err}")


def cache_counts(envoy):
    """(hits, misses) of the filter's token cache, from Envoy's admin /stats."""
    try:
        with open(envoy.admin_path) as f:
            admin = int(f.read().strip().rsplit(":", 1)[1])
        with run.urllib.request.urlopen(
                f"http://127.0.0.1:{admin}/stats?filter=cognito_edge_auth.cache", timeout=5) as r:
            text = r.read().decode()
    except (OSError, ValueError, IndexError):
        return (0, 0)
    counts = {"hits": 0, "misses": 0}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        for k in counts:
            if name.endswith(f"cache.{k}") and value.strip().isdigit():
                counts[k] += int(value)
    return (counts["hits"], counts["misses"])


def watch(envoy, total, warmup):
    """Samples Envoy's RSS every 5 s for `total` seconds in a thread; returns a finisher that
    gives {after_warmup_kib, end_kib, max_kib}."""
    samples, started = [], time.time()

    def sample():
        while time.time() - started < total:
            samples.append((time.time() - started, rss_kib(envoy.proc.pid)))
            time.sleep(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def finish():
        sampler.join(timeout=10)
        after = [kib for t, kib in samples if t >= warmup]
        end = rss_kib(envoy.proc.pid)
        return {"after_warmup_kib": after[0] if after else 0,
                "end_kib": end, "max_kib": max(after + [end])}
    return finish


def skew_phase(envoy, port):
    """Tokens inside the clock-skew window, hot and 1,000-users style, all → 200."""
    hot = tokens.mint("skew-hot", 1, -SKEW_EXPIRED_AGO)
    users = tokens.mint("skew-users", 200, -SKEW_EXPIRED_AGO)
    paths = {}
    for name, toks in (("skew hot", hot), ("skew users", users)):
        paths[name] = os.path.join(run.RUN_DIR, f"soak-{name.replace(' ', '-')}.txt")
        with open(paths[name], "w") as f:
            f.write("\n".join(toks) + "\n")
    total = SKEW_WARMUP + SKEW_SECONDS
    run.log(f"soak: clock-skew phase, exp {SKEW_EXPIRED_AGO}s ago (skew {CLOCK_SKEW}s): "
            f"{SKEW_WARMUP}s warm-up, then {SKEW_SECONDS}s")
    before = cache_counts(envoy)
    procs = {name: wrk(port, 200, 16, total, path) for name, path in paths.items()}
    finish = watch(envoy, total, SKEW_WARMUP)
    results = {name: result(p, total) for name, p in procs.items()}
    mem = finish()
    after = cache_counts(envoy)
    return results, mem, (after[0] - before[0], after[1] - before[1])


def main():
    os.makedirs(run.RUN_DIR, exist_ok=True)
    valid_file = tokens.token_file("soak", 1000, log=run.log)
    access_file = tokens.token_file("access-soak", 1000, log=run.log)
    with open(valid_file) as f:
        valid = [t for t in f.read().split() if t]
    invalid_file = os.path.join(run.RUN_DIR, "soak-invalid.txt")
    with open(invalid_file, "w") as f:
        for t in valid:
            f.write(run.tamper(t) + "\n")
        for junk in ("garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."):
            f.write(junk + "\n")
    files = {"valid": valid_file, "access": access_file, "invalid": invalid_file, "missing": None}
    if "native" in BUILDS:
        run.build_native_floor()  # links the .so where Envoy looks for modules
    runs = [soak(build, files, valid[0]) for build in BUILDS]
    ok = all(r["ok"] for r in runs)
    report(runs, ok)
    return 0 if ok else 1


def soak(build, files, probe):
    """One build's soak: the mixed phase, then the clock-skew phase, in one Envoy."""
    jwks = run.JwksServer(json.dumps(tokens.jwks()))
    extra = {"denial_log_level": "off"}
    if CACHE:
        extra["token_cache"] = {"max_entries": int(CACHE)}
    filter_cfg = run.filter_json(jwks.port, extra)
    filter_cfg["providers"][0]["clock_skew_seconds"] = CLOCK_SKEW
    entry = run.native_filter(filter_cfg) if build == "native" else run.wasm_filter(filter_cfg)
    envoy = run.Envoy(f"soak-{build}", run.bootstrap(entry, jwks.port), 2)
    try:
        port = envoy.wait_started()
        if port is None or not run.wait_for_keys(port, probe):
            raise RuntimeError(f"Envoy did not come up with keys; log: {envoy.log_path}")
        run.log(f"soak ({build}): {WARMUP}s warm-up, then {SECONDS}s of "
                f"{'/'.join(name for name, _, _ in CLASSES)} at once")
        total = WARMUP + SECONDS
        procs = {name: wrk(port, code, conns, total, files[name]) for name, code, conns in CLASSES}
        finish = watch(envoy, total, WARMUP)
        results = {name: result(p, total) for name, p in procs.items()}
        mem = finish()
        skew = skew_phase(envoy, port) if SKEW_SECONDS > 0 else None
        alive = envoy.proc.poll() is None
    finally:
        envoy.stop()
        jwks.close()
        run.stop_all()
    every = list(results.values()) + (list(skew[0].values()) if skew else [])
    ok = alive and all(r["wrong"] == 0 and r["server_errors"] == 0 for r in every)
    return {"build": build, "results": results, "mem": mem, "skew": skew, "ok": ok}


def memory_line(mem):
    growth = mem["end_kib"] - mem["after_warmup_kib"]
    return (f"Envoy resident memory: {mem['after_warmup_kib'] / 1024:.1f} MiB after warm-up, "
            f"{mem['end_kib'] / 1024:.1f} MiB at the end ({growth / 1024:+.1f} MiB), "
            f"highest {mem['max_kib'] / 1024:.1f} MiB.")


def rows(results, classes):
    out = ["| class | expected | requests | wrong decisions | 5xx | socket errors | p99 ms |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, code in classes:
        r = results[name]
        out.append(f"| {name} | {code} | {r['requests']:,} | {r['wrong']} | {r['server_errors']} "
                   f"| {r['socket_errors']} | {r['p99_us'] / 1000:.2f} |")
    return out


def report(runs, ok):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Soak",
        "",
        f"`make soak` on {when} (Envoy --concurrency 2, {os.cpu_count()} CPUs, "
        f"{SECONDS}s after a {WARMUP}s warm-up per build, token cache "
        f"{'default' if not CACHE else CACHE}).",
        "Four wrk processes at once; every response is checked against the expected status.",
        "",
    ]
    for r in runs:
        total = sum(x["requests"] for x in r["results"].values())
        lines += [f"## {'The native module (.so)' if r['build'] == 'native' else 'The .wasm (V8)'}",
                  "", f"{total:,} requests in the mixed phase.", ""]
        lines += rows(r["results"], [(name, code) for name, code, _ in CLASSES])
        lines += ["", memory_line(r["mem"]), ""]
        if r["skew"]:
            s_results, s_mem, (hits, misses) = r["skew"]
            lines += [
                f"**Clock-skew phase** ({SKEW_SECONDS}s after a {SKEW_WARMUP}s warm-up, same "
                f"Envoy): tokens whose `exp` was {SKEW_EXPIRED_AGO}s in the past when minted, "
                f"inside the provider's `clock_skew_seconds: {CLOCK_SKEW}` — one hot token and "
                "200 users, two wrk processes at once.",
                "",
            ]
            lines += rows(s_results, [("skew hot", 200), ("skew users", 200)])
            lines += ["", memory_line(s_mem),
                      f"Token cache in this phase: {hits:,} hits, {misses:,} misses "
                      "(each skew-window token is verified once per worker, then hit).", ""]
        lines += [f"Verdict: {'no wrong decision, no 5xx' if r['ok'] else 'FAILED'}.", ""]
    text = "\n".join(lines)
    print(text)
    with open(DOC, "w") as f:
        f.write(text)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        run.stop_all()
        sys.exit(130)
