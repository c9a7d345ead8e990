"""`make soak`: minutes of mixed valid, invalid and missing tokens against one Envoy with the
filter, every response checked against the decision expected, and Envoy's memory watched.

Three wrk processes run at once against the same Envoy (--concurrency 2):
  valid     1,000 distinct valid ID tokens (so the token cache both hits and evicts)  → 200
  invalid   the same tokens with a tampered signature, plus garbage                  → 401
  missing   no token                                                                  → 401
It reports requests, wrong decisions, 5xx and the Envoy process's resident memory (VmRSS) after
warm-up, at the end and at its highest, and writes them to docs/soak.md. Exits 1 on any wrong
decision or 5xx.

Settings: SOAK_SECONDS=180 (after SOAK_WARMUP=20), SOAK_CACHE (token_cache.max_entries; unset:
the default), ENVOY_BIN, CEA_WASM.
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
CACHE = os.environ.get("SOAK_CACHE", "")
LUA = os.path.join(tokens.ROOT, "bench", "wrk", "expect.lua")
DOC = os.path.join(tokens.ROOT, "docs", "soak.md")
CLASSES = [("valid", 200, 16), ("invalid", 401, 8), ("missing", 401, 8)]


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


def main():
    os.makedirs(run.RUN_DIR, exist_ok=True)
    valid_file = tokens.token_file("soak", 1000, log=run.log)
    with open(valid_file) as f:
        valid = [t for t in f.read().split() if t]
    invalid_file = os.path.join(run.RUN_DIR, "soak-invalid.txt")
    with open(invalid_file, "w") as f:
        for t in valid:
            f.write(run.tamper(t) + "\n")
        for junk in ("garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."):
            f.write(junk + "\n")
    files = {"valid": valid_file, "invalid": invalid_file, "missing": None}

    jwks = run.JwksServer(json.dumps(tokens.jwks()))
    extra = {"denial_log_level": "off"}
    if CACHE:
        extra["token_cache"] = {"max_entries": int(CACHE)}
    cfg = run.bootstrap(run.wasm_filter(run.filter_json(jwks.port, extra)), jwks.port)
    envoy = run.Envoy("soak", cfg, 2)
    try:
        port = envoy.wait_started()
        if port is None or not run.wait_for_keys(port, valid[0]):
            raise RuntimeError(f"Envoy did not come up with keys; log: {envoy.log_path}")
        run.log(f"soak: {WARMUP}s warm-up, then {SECONDS}s of valid/invalid/missing at once")
        total = WARMUP + SECONDS
        procs = {name: wrk(port, code, conns, total, files[name]) for name, code, conns in CLASSES}
        samples = []
        started = time.time()

        def sample():
            while time.time() - started < total:
                samples.append((time.time() - started, rss_kib(envoy.proc.pid)))
                time.sleep(5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results = {name: result(p, total) for name, p in procs.items()}
        sampler.join(timeout=10)
        after_warmup = [kib for t, kib in samples if t >= WARMUP]
        mem = {"after_warmup_kib": after_warmup[0] if after_warmup else 0,
               "end_kib": rss_kib(envoy.proc.pid),
               "max_kib": max(after_warmup or [0])}
        alive = envoy.proc.poll() is None
    finally:
        envoy.stop()
        jwks.close()
        run.stop_all()

    ok = alive and all(r["wrong"] == 0 and r["server_errors"] == 0 for r in results.values())
    report(results, mem, ok)
    return 0 if ok else 1


def report(results, mem, ok):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Soak",
        "",
        f"`make soak` on {when} (Envoy --concurrency 2, {os.cpu_count()} CPUs, "
        f"{SECONDS}s after a {WARMUP}s warm-up, token cache {'default' if not CACHE else CACHE}).",
        "Three wrk processes at once; every response is checked against the expected status.",
        "",
        "| class | expected | requests | wrong decisions | 5xx | socket errors | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, code, _ in CLASSES:
        r = results[name]
        lines.append(f"| {name} | {code} | {r['requests']:,} | {r['wrong']} | {r['server_errors']} "
                     f"| {r['socket_errors']} | {r['p99_us'] / 1000:.2f} |")
    growth = mem["end_kib"] - mem["after_warmup_kib"]
    lines += [
        "",
        f"Envoy resident memory: {mem['after_warmup_kib'] / 1024:.1f} MiB after warm-up, "
        f"{mem['end_kib'] / 1024:.1f} MiB at the end ({growth / 1024:+.1f} MiB), "
        f"highest {mem['max_kib'] / 1024:.1f} MiB.",
        "",
        f"Verdict: {'no wrong decision, no 5xx' if ok else 'FAILED'}.",
        "",
    ]
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
