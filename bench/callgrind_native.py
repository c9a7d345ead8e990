"""Where a request's time goes in the native module, inside the real Envoy: Envoy with the .so
runs under callgrind (--concurrency 1, the bench's configuration and token), wrk sends a few
thousand requests, and the instructions of the filter's hooks and of the stages inside them are
divided by the number of requests. Instructions, unlike the wall clock, do not move with the
load of the machine. A profiling aid, not a test; asserts nothing.

    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \\
      cargo build --release --lib --target-dir target/prof
    CEA_SO=target/prof/release/libcognito_edge_auth.so .venv/bin/python bench/callgrind_native.py

Two runs: the hit path (one hot token, the cache on) and the verifying path (the cache off).
Envoy itself is stripped, so its own work (the codec, the router) has no names; what is counted
under the filter's hooks includes the callbacks into Envoy they make (reading and writing
headers).
"""

import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
import tokens  # noqa: E402

ENVOY_BINARY = (glob.glob(os.path.join(run.ROOT, ".venv", "lib", "python3.*", "site-packages",
                                       "envoy", "_bin", "envoy")) or [run.ENVOY])[0]
SECONDS = int(os.environ.get("CALLGRIND_SECONDS", "4"))
# The functions whose inclusive instructions are reported, per request.
STAGES = [
    ("envoy_dynamic_module_on_http_filter_request_headers", "request-headers hook"),
    ("cognito_edge_auth::decision::decide_with", "the decision (core)"),
    ("cognito_edge_auth::verify::verify", "verify (of which)"),
    ("<cognito_edge_auth::hosts::native::crypto::AwsLc as "
     "cognito_edge_auth::signature::SignatureVerifier>::verify", "RSA (aws-lc-rs)"),
    ("envoy_dynamic_module_on_http_filter_new", "filter_new hook"),
    ("envoy_dynamic_module_on_http_filter_stream_complete", "stream_complete hook"),
    ("envoy_dynamic_module_on_http_filter_destroy", "filter_destroy hook"),
]


def inclusive(out):
    """{function name: (inclusive instructions, calls)} from a callgrind output file: the cost
    of every call to a function, as its callers' records state it (the line after `calls=`)."""
    names, totals = {}, {}
    cfn, pending = None, False
    with open(out) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                if m.group(1) == "cfn":
                    cfn = m.group(2)
                continue
            m = re.match(r"calls=(\d+)", line)
            if m and cfn is not None:
                cost, calls = totals.get(cfn, (0, 0))
                totals[cfn] = (cost, calls + int(m.group(1)))
                pending = True
                continue
            if pending:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    cost, calls = totals[cfn]
                    totals[cfn] = (cost + int(parts[1]), calls)
                pending = False
    return {names.get(i, i): v for i, v in totals.items()}


def profile(label, extra):
    jwks = run.JwksServer(json.dumps(tokens.jwks()))
    cfg = run.filter_json(jwks.port, {"denial_log_level": "off", **extra})
    os.makedirs(run.RUN_DIR, exist_ok=True)
    path = os.path.join(run.RUN_DIR, f"callgrind-{label}.json")
    admin = path[:-5] + ".admin"
    out = path[:-5] + ".out"
    with open(path, "w") as f:
        json.dump(run.bootstrap(run.native_filter(cfg), jwks.port), f)
    if os.path.exists(admin):
        os.remove(admin)
    envoy = run.spawn(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                       ENVOY_BINARY, "-c", path, "--use-dynamic-base-id", "--concurrency", "1",
                       "--admin-address-path", admin, "-l", "error"],
                      env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": run.MODULES},
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port, deadline = None, time.time() + 300
        while port is None and time.time() < deadline:
            try:
                with open(admin) as f:
                    a = int(f.read().strip().rsplit(":", 1)[1])
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{a}/listeners?format=json", timeout=10) as r:
                    port = json.load(r)["listener_statuses"][0]["local_address"][
                        "socket_address"]["port_value"] or None
            except (OSError, ValueError, IndexError, KeyError):
                time.sleep(0.5)
        hot = tokens.mint("callgrind", 1, 3600)[0]
        if port is None or not run.wait_for_keys(port, hot, timeout=300):
            raise RuntimeError(f"Envoy under callgrind did not come up ({label})")
        subprocess.run(["wrk", "-t1", "-c1", f"-d{SECONDS}s", "-H", f"Authorization: Bearer {hot}",
                        f"http://127.0.0.1:{port}/x"], capture_output=True, check=True)
    finally:
        envoy.terminate()
        envoy.wait(timeout=300)
        jwks.close()
    return inclusive(out)


def main():
    run.build_native_floor()  # links CEA_SO where Envoy looks for modules
    results = {label: profile(label, extra) for label, extra in
               [("hit", {}), ("verify", {"token_cache": {"max_entries": 0}})]}
    per = {}
    for label, r in results.items():
        requests = r.get(STAGES[0][0], (0, 1))[1] or 1
        per[label] = {name: r.get(name, (0, 0))[0] / requests for name, _ in STAGES}
        per[label]["requests"] = requests
    hook, decide = STAGES[0][0], STAGES[1][0]
    rows = [(label, lambda p, n=name: p[n]) for name, label in STAGES]
    rows.insert(2, ("the glue: headers in and out, counters", lambda p: p[hook] - p[decide]))
    rows.append(("all hooks of one request", lambda p: p[hook] + sum(
        p[name] for name, _ in STAGES[4:])))
    print("Instructions per request (callgrind), the native module in Envoy:\n")
    print("| stage | hit path | verifying path |")
    print("|---|---:|---:|")
    for label, value in rows:
        print(f"| {label} | {value(per['hit']):,.0f} | {value(per['verify']):,.0f} |")
    print(f"\n{per['hit']['requests']} and {per['verify']['requests']} requests.")


if __name__ == "__main__":
    sys.exit(main())
