#!/usr/bin/env python3
"""`make bench`: Envoy with no auth, with Envoy's native jwt_authn, and with this filter, under wrk.

One session, interleaved: every round starts each (concurrency, configuration) cell in turn, in
an order rotated from round to round, so drift (other work on the machine, thermals) spreads
over all cells alike. A cell is one fresh Envoy: it is checked (no token → 401, valid token →
200, tampered signature → 401; 200 for all three without auth), then each workload is warmed
up and measured with wrk. The table shows the median over rounds and is written into
docs/benchmarks.md between the `bench:results` markers. It asserts nothing.

Settings (environment):
  BENCH_ROUNDS=3  BENCH_DURATION=4  BENCH_WARMUP=1     rounds, seconds measured, seconds warm-up
  BENCH_CONNECTIONS=2  BENCH_THREADS=1                 wrk -c / -t (2: latency is not queueing)
  BENCH_CONCURRENCY="1 2"                              Envoy --concurrency values
  BENCH_TOKENS=50000                                   distinct tokens for workload (2)
  BENCH_FILTER_CACHE=N                                 token_cache.max_entries for "cache on"
                                                       (unset: the field is left out, the default)
  BENCH_ONLY="none,jwt_authn,..."                      run only these configurations (dev)
  BENCH_WORKLOADS="hot,unique,users"                   run only these workloads (dev)
  BENCH_DOC=docs/benchmarks.md                         where the table goes ("" = nowhere)
  ENVOY_BIN, CEA_WASM                                  the binaries (default: .venv, target/)
  BENCH_VARIANTS="before=/tmp/a.wasm,..."              other builds of the filter, each a row
                                                       "filter <name>, cache on" (before/after
                                                       comparisons in one interleaved session)
  NOOP_WASM                                            the floor filter (default: built here
                                                       from bench/noop with cargo)
  CEA_SO, NOOP_SO                                      the native module and the native floor
                                                       (default: target/release, built here from
                                                       bench/noop-native with cargo)
"""

import datetime
import http.server
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokens  # noqa: E402

ROOT = tokens.ROOT
RUN_DIR = os.path.join(ROOT, "bench", ".run")
LUA = os.path.join(ROOT, "bench", "wrk", "tokens.lua")


def env_int(name, default):
    return int(os.environ.get(name, default))


ROUNDS = env_int("BENCH_ROUNDS", 3)
DURATION = env_int("BENCH_DURATION", 4)
WARMUP = env_int("BENCH_WARMUP", 1)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 2)
THREADS = env_int("BENCH_THREADS", 1)
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1 2").split()]
UNIQUE_TOKENS = env_int("BENCH_TOKENS", 50000)
FILTER_CACHE = os.environ.get("BENCH_FILTER_CACHE", "")
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
VARIANTS = [v.split("=", 1) for v in os.environ.get("BENCH_VARIANTS", "").split(",") if "=" in v]
ONLY_WORKLOADS = [s for s in os.environ.get("BENCH_WORKLOADS", "").split(",") if s]
DOC = os.environ.get("BENCH_DOC", os.path.join(ROOT, "docs", "benchmarks.md"))
ENVOY = os.environ.get("ENVOY_BIN", os.path.join(ROOT, ".venv", "bin", "envoy"))
WASM = os.environ.get("CEA_WASM", os.path.join(ROOT, "target", "wasm32-wasip1", "release",
                                               "cognito_edge_auth.wasm"))
NOOP_DIR = os.path.join(ROOT, "bench", "noop")
NOOP_WASM = os.environ.get("NOOP_WASM", "")
# The native builds: Envoy opens lib<name>.so from ENVOY_DYNAMIC_MODULES_SEARCH_PATH, one
# directory, so both modules are linked into bench/.run/modules.
SO = os.environ.get("CEA_SO", os.path.join(ROOT, "target", "release", "libcognito_edge_auth.so"))
NOOP_NATIVE_DIR = os.path.join(ROOT, "bench", "noop-native")
NOOP_SO = os.environ.get("NOOP_SO", "")
MODULES = os.path.join(RUN_DIR, "modules")
JWT_CACHE_SIZE = 100000


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------
# Workloads

WORKLOADS = [
    # key, title, token set (label, count), warm-up token set
    ("hot", "(1) one hot token", ("hot", 1), ("hot", 1)),
    ("unique", f"(2) every request a new token ({UNIQUE_TOKENS:,} cycled)",
     ("unique", UNIQUE_TOKENS), ("users", 1000)),
    ("users", "(3) 1,000 users, each repeating its token", ("users", 1000), ("users", 1000)),
]
# (2) is warmed up with the users' tokens, so that its measured run sees only tokens this Envoy
# has never verified (as long as the file does not wrap; `wraps` in the notes says if it did).


# ---------------------------------------------------------------------------------------
# Configurations

def filter_json(jwks_port, extra):
    cfg = {"providers": [{
        "name": "cognito",
        "user_pool_id": tokens.POOL,
        "client_ids": [tokens.CLIENT],
        "jwks": {"cluster": "jwks",
                 "uri": f"http://127.0.0.1:{jwks_port}/{tokens.POOL}/.well-known/jwks.json"},
    }]}
    cfg.update(extra)
    return cfg


def wasm_filter(cfg, wasm=None, root_id="cognito_edge_auth"):
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": root_id,
                "root_id": root_id,
                "fail_open": False,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(cfg)},
                "vm_config": {"vm_id": root_id,
                              "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": wasm or WASM}}},
            },
        },
    }


def native_filter(cfg, module="cognito_edge_auth"):
    """The filter as an Envoy dynamic module, with the same JSON configuration."""
    return {
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3."
                     "DynamicModuleFilter",
            "dynamic_module_config": {"name": module},
            "filter_name": module,
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": json.dumps(cfg)},
        },
    }


def build_native_floor():
    """Builds bench/noop-native unless NOOP_SO names a built one, and links both modules into
    the directory Envoy searches."""
    global NOOP_SO
    if not NOOP_SO:
        subprocess.run(["cargo", "build", "--quiet", "--release",
                        "--manifest-path", os.path.join(NOOP_NATIVE_DIR, "Cargo.toml")], check=True)
        NOOP_SO = os.path.join(NOOP_NATIVE_DIR, "target", "release", "libnoop_native.so")
    os.makedirs(MODULES, exist_ok=True)
    for path in (SO, NOOP_SO):
        link = os.path.join(MODULES, os.path.basename(path))
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(path), link)


def noop_filter():
    """The proxy-wasm floor: bench/noop, an HttpContext that returns Continue at once."""
    f = wasm_filter({}, wasm=NOOP_WASM, root_id="noop")
    f["typed_config"]["config"]["configuration"]["value"] = ""
    return f


def build_noop():
    """Builds bench/noop (its own workspace) unless NOOP_WASM names a built one."""
    global NOOP_WASM
    if NOOP_WASM:
        return NOOP_WASM
    subprocess.run(["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1",
                    "--manifest-path", os.path.join(NOOP_DIR, "Cargo.toml")], check=True)
    NOOP_WASM = os.path.join(NOOP_DIR, "target", "wasm32-wasip1", "release", "noop_filter.wasm")
    return NOOP_WASM


def jwt_authn(jwks_port, cache):
    provider = {
        "issuer": tokens.ISSUER,
        "audiences": [tokens.CLIENT],
        "remote_jwks": {
            "http_uri": {"uri": f"http://127.0.0.1:{jwks_port}/{tokens.POOL}/.well-known/jwks.json",
                         "cluster": "jwks", "timeout": "5s"},
            "cache_duration": "600s",
            # Fetch at start-up (the listener waits for it): warm before the first request.
            "async_fetch": {},
        },
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": JWT_CACHE_SIZE}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"cognito": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "cognito"}}],
        },
    }


class Config:
    """One row family: a name, how it is compared, and the auth filter it puts in Envoy.

    `variants` are filter configurations tried in order at the probe: the first one this build
    of the filter accepts is used (a field that has not landed yet is refused as unknown).
    """

    def __init__(self, key, label, kind, variants, workloads=None, baseline=None):
        self.key, self.label, self.kind = key, label, kind
        self.variants = variants  # list of (note, jwks_port -> http filter or None)
        self.workloads = workloads
        self.baseline = baseline  # key of the jwt_authn config it is compared with
        self.make = None  # chosen at the probe
        self.note = ""
        self.skipped = None  # reason, when no variant is accepted


def configurations():
    off = {"token_cache": {"max_entries": 0}}
    # Cache on: the filter's default size, unless BENCH_FILTER_CACHE says otherwise.
    on = {"token_cache": {"max_entries": int(FILTER_CACHE)}} if FILTER_CACHE else {}
    on_label = f"filter, cache {int(FILTER_CACHE):,}" if FILTER_CACHE else "filter, cache on (default size)"
    return [
        Config("none", "no auth", "none", [("", lambda p: None)], baseline="jwt_authn_cache"),
        Config("noop", "proxy-wasm floor (no-op filter)", "none",
               [("", lambda p: noop_filter())], baseline="jwt_authn_cache"),
        Config("jwt_authn", "jwt_authn", "jwt_authn", [("", lambda p: jwt_authn(p, False))],
               baseline="jwt_authn"),
        Config("jwt_authn_cache", f"jwt_authn + jwt_cache {JWT_CACHE_SIZE // 1000}k", "jwt_authn",
               [("", lambda p: jwt_authn(p, True))], baseline="jwt_authn_cache"),
        Config("filter", "filter, cache off", "filter", [
            ("", lambda p: wasm_filter(filter_json(p, off))),
            ("this build has no token_cache field: no cache",
             lambda p: wasm_filter(filter_json(p, {}))),
        ], baseline="jwt_authn"),
        Config("filter_cache", on_label, "filter", [
            ("", lambda p: wasm_filter(filter_json(p, on))),
        ], baseline="jwt_authn_cache"),
        *[Config(f"variant_{name}", f"filter {name}, cache on", "filter",
                 [("", lambda p, w=path: wasm_filter(filter_json(p, on), wasm=w))],
                 baseline="jwt_authn_cache") for name, path in VARIANTS],
        Config("noop_native", "native floor (no-op module)", "none",
               [("", lambda p: native_filter({}, module="noop_native"))],
               baseline="jwt_authn_cache"),
        Config("native", "native filter, cache off", "filter",
               [("", lambda p: native_filter(filter_json(p, off)))], baseline="jwt_authn"),
        Config("native_cache", "native filter, cache on (default size)", "filter",
               [("", lambda p: native_filter(filter_json(p, on)))], baseline="jwt_authn_cache"),
        Config("filter_rust", "filter, pure-Rust RSA, cache off", "filter", [
            ("", lambda p: wasm_filter(filter_json(p, {**off, "native_verification": False}))),
            ("no token_cache field: no cache",
             lambda p: wasm_filter(filter_json(p, {"native_verification": False}))),
        ], workloads=["unique"], baseline="jwt_authn"),
    ]


def bootstrap(auth_filter, jwks_port):
    filters = ([auth_filter] if auth_filter else []) + [{
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        # The "upstream": Envoy answers itself, so nothing behind it is the
                        # bottleneck, the same for every configuration.
                        "route_config": {"virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "direct_response": {"status": 200,
                                                            "body": {"inline_string": "ok\n"}}}],
                        }]},
                        "http_filters": filters,
                    },
                }]}],
            }],
            "clusters": [{
                "name": "jwks", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "jwks", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": jwks_port}}}}]}]},
            }],
        },
    }


# ---------------------------------------------------------------------------------------
# Processes: every child is tracked and stopped on exit, Ctrl-C and errors

CHILDREN = set()


def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, Linux only
        pass


def spawn(args, **kw):
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True,
                         preexec_fn=_die_with_parent, **kw)
    CHILDREN.add(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    CHILDREN.discard(p)


def stop_all():
    for p in list(CHILDREN):
        stop(p)


class JwksServer:
    """The JWKS over HTTP on an OS-chosen port, in a thread of this process; counts fetches."""

    def __init__(self, body):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.fetches += 1
                data = body.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_):
                pass

        self.fetches = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def http_status(port, token=None, timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/bench")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class Envoy:
    def __init__(self, name, cfg, concurrency):
        self.name = f"{name}-c{concurrency}"
        self.dir = RUN_DIR
        self.config_path = os.path.join(RUN_DIR, f"envoy-{self.name}.json")
        self.admin_path = os.path.join(RUN_DIR, f"envoy-{self.name}.admin")
        self.log_path = os.path.join(RUN_DIR, f"envoy-{self.name}.log")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)
        if os.path.exists(self.admin_path):
            os.remove(self.admin_path)
        self.log_file = open(self.log_path, "w")
        self.proc = spawn([ENVOY, "-c", self.config_path, "--use-dynamic-base-id",
                           "--concurrency", str(concurrency), "--admin-address-path",
                           self.admin_path, "-l", "warning"],
                          stdout=self.log_file, stderr=subprocess.STDOUT,
                          env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": MODULES})
        self.port = None

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def wait_started(self, timeout=60):
        """The listener port, or None when Envoy exited (refused its configuration)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return None
            try:
                with open(self.admin_path) as f:
                    admin = int(f.read().strip().rsplit(":", 1)[1])
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{admin}/listeners?format=json", timeout=2) as r:
                    statuses = json.load(r).get("listener_statuses", [])
                port = statuses[0]["local_address"]["socket_address"].get("port_value", 0)
                if port:
                    self.port = port
                    return port
            except (OSError, ValueError, IndexError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Envoy {self.name} did not start in {timeout}s; log: {self.log_path}")

    def cpu_seconds(self):
        """User + system CPU time of the Envoy process (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        stop(self.proc)
        self.log_file.close()


# ---------------------------------------------------------------------------------------
# wrk

def wrk(port, token_file, seconds):
    args = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", LUA,
            f"http://127.0.0.1:{port}/", "--", token_file, str(THREADS)]
    p = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=seconds + 60)
    finally:
        stop(p)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk printed no BENCH_JSON line (exit {p.returncode}):\n{out}\n{err}")


# ---------------------------------------------------------------------------------------
# One cell: start, check, measure

def check_auth(config, port, hot, bad):
    """Status codes for no token / valid token / tampered token; None when all are as they must be."""
    want = (200, 200, 200) if config.kind == "none" else (401, 200, 401)
    got = (http_status(port), http_status(port, hot), http_status(port, bad))
    return None if got == want else f"no token/valid/tampered → {got}, expected {want}"


def wait_for_keys(port, hot, timeout=20):
    """The filter answers 503 (or jwt_authn 401) until its keys are in; wait for a 200."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if http_status(port, hot) == 200:
            return True
        time.sleep(0.1)
    return False


def tamper(token):
    head, sig = token.rsplit(".", 1)
    return f"{head}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"


def run_cell(config, concurrency, jwks_port, files, hot):
    """Returns {workload: wrk result} for one fresh Envoy, or raises CellFailed."""
    envoy = Envoy(config.key, bootstrap(config.make(jwks_port), jwks_port), concurrency)
    try:
        port = envoy.wait_started()
        if port is None:
            raise CellFailed(f"Envoy exited at start; log: {envoy.log_path}\n"
                             + envoy.log()[-2000:])
        if config.kind != "none" and not wait_for_keys(port, hot):
            raise CellFailed(f"a valid token never got 200; log: {envoy.log_path}")
        problem = check_auth(config, port, hot, tamper(hot))
        if problem:
            raise CellFailed(f"auth check failed: {problem}; log: {envoy.log_path}")
        results = {}
        for key, _, tokens_spec, warm_spec in WORKLOADS:
            if key not in workloads_of(config):
                continue
            if WARMUP > 0:
                wrk(port, files[warm_spec], WARMUP)
            cpu0 = envoy.cpu_seconds()
            r = wrk(port, files[tokens_spec], DURATION)
            r["envoy_cpu_s"] = envoy.cpu_seconds() - cpu0
            results[key] = r
        if envoy.proc.poll() is not None:
            raise CellFailed(f"Envoy died during the run; log: {envoy.log_path}")
        return results
    finally:
        envoy.stop()


class CellFailed(Exception):
    pass


def workloads_of(config):
    keys = [w[0] for w in WORKLOADS]
    if config.workloads:
        keys = [k for k in keys if k in config.workloads]
    if ONLY_WORKLOADS:
        keys = [k for k in keys if k in ONLY_WORKLOADS]
    return keys


def probe(config, jwks_port, hot):
    """Picks the first variant this filter build accepts (Envoy starts and authenticates)."""
    for note, make in config.variants:
        envoy = Envoy(f"probe-{config.key}", bootstrap(make(jwks_port), jwks_port), 1)
        try:
            port = envoy.wait_started()
            if port is None:
                text = envoy.log()
                if "unknown field" in text:
                    field = re.search(r"unknown field `([^`]+)`", text)
                    config.skipped = (f"this build refuses `{field.group(1)}`"
                                      if field else "unknown field")
                    continue
                raise RuntimeError(f"Envoy refused the {config.label} configuration:\n"
                                   + text[-3000:])
            if config.kind != "none" and not wait_for_keys(port, hot):
                raise RuntimeError(f"{config.label}: a valid token never got 200; "
                                   f"log: {envoy.log_path}")
            problem = check_auth(config, port, hot, tamper(hot))
            if problem:
                raise RuntimeError(f"{config.label}: {problem}; log: {envoy.log_path}")
            config.make, config.note, config.skipped = make, note, None
            return True
        finally:
            envoy.stop()
    return False


# ---------------------------------------------------------------------------------------
# Results

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(runs):
    """Median over rounds of one (workload, concurrency, configuration) cell."""
    rps = [r["requests"] / (r["duration_us"] / 1e6) for r in runs]
    return {
        "rounds": len(runs),
        "rps": median(rps), "rps_min": min(rps), "rps_max": max(rps),
        "p50_ms": median([r["latency_us"]["p50"] / 1000 for r in runs]),
        "p99_ms": median([r["latency_us"]["p99"] / 1000 for r in runs]),
        "cpu_us": median([r["envoy_cpu_s"] * 1e6 / max(1, r["requests"]) for r in runs]),
        "non2xx": sum(r["errors"]["status"] for r in runs),
        "socket_errors": sum(r["errors"][k] for r in runs
                             for k in ("connect", "read", "write", "timeout")),
        "requests": sum(r["requests"] for r in runs),
        "wraps": max(r.get("wraps", 0) for r in runs),
    }


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    version = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version:\s*\S+?/(\d+\.\d+\.\d+)/", version)
    wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel": platform.release(),
        "envoy": m.group(1) if m else version.strip(),
        "wrk": " ".join(wrk_v.split()[:2]),
        "wasm_bytes": os.path.getsize(WASM),
        "commit": commit,
        "loadavg": os.getloadavg(),
    }


def table(configs, summary, info, elapsed):
    """The results as markdown: a header line, then one table per workload."""
    out = [
        f"Run {info['date']} · {info['nproc']} CPUs, {info['cpu']} · Linux {info['kernel']} · "
        f"Envoy {info['envoy']} · {info['wrk']} · filter `{info['commit']}`, "
        f"{info['wasm_bytes']:,} bytes ({info['wasm_bytes'] / 1024:.0f} KiB) · "
        f"load average at start {info['loadavg'][0]:.2f} · took {elapsed / 60:.1f} min",
        "",
        f"{ROUNDS} rounds × {DURATION} s per row (after {WARMUP} s warm-up), "
        f"wrk -t{THREADS} -c{CONNECTIONS}; each number is the median over the rounds; "
        "± is half the range of req/s over the rounds, as a share of the median; "
        "auth µs/req is the Envoy CPU per request minus that of no auth, over floor µs/req "
        "minus that of the floor (the proxy-wasm no-op filter of bench/noop; for the native "
        "rows the no-op dynamic module of bench/noop-native); p99 over no auth "
        "is the row's p99 minus no auth's; vs jwt_authn compares with the matching jwt_authn "
        "row (cache off with jwt_authn, cache on — and no auth and the floor — with "
        "jwt_authn + jwt_cache), vs floor with the floor row: req/s (higher is better) · CPU "
        "per request (lower is better).",
    ]
    by_key = {c.key: c for c in configs}
    for wkey, wtitle, _, _ in WORKLOADS:
        rows = []
        for conc in CONCURRENCY:
            for c in configs:
                if wkey not in workloads_of(c):
                    continue
                rows.append(row(c, by_key, wkey, conc, summary))
        rows = [r for r in rows if r]
        if not rows:
            continue
        out += ["", f"**{wtitle}**", "",
                "| Envoy | configuration | req/s | ± | p50 ms | p99 ms | p99 over no auth µs "
                "| Envoy CPU µs/req | auth µs/req | over floor µs/req "
                "| vs jwt_authn: req/s · CPU | vs floor: req/s · CPU "
                "| ≥400 / socket errors | notes |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
        out += rows
    return "\n".join(out)


def row(c, by_key, wkey, conc, summary):
    head = f"| --concurrency {conc} | {c.label} |"
    empty = " – | | | | | | | | | | | |"
    if c.skipped:
        return f"{head}{empty} not run: {c.skipped} |"
    s = summary.get((wkey, conc, c.key))
    if not s:
        return None
    if s.get("failed"):
        return f"{head}{empty} **FAILED**: {s['failed']} |"
    ok = lambda x: x and not x.get("failed")  # noqa: E731
    ratio = ""
    base = summary.get((wkey, conc, c.baseline)) if c.baseline else None
    if ok(base) and base["rps"] > 0 and base["cpu_us"] > 0:
        ratio = f"{s['rps'] / base['rps']:.2f}× · {s['cpu_us'] / base['cpu_us']:.2f}×"
    # A native row's floor is the native no-op module; the others', the proxy-wasm no-op.
    floor_key = "noop_native" if c.key.startswith(("native", "noop_native")) else "noop"
    floor = summary.get((wkey, conc, floor_key))
    vs_floor, over_floor = "", ""
    if ok(floor) and floor["rps"] > 0 and floor["cpu_us"] > 0:
        vs_floor = f"{s['rps'] / floor['rps']:.2f}× · {s['cpu_us'] / floor['cpu_us']:.2f}×"
        if c.key not in ("none", "noop", "noop_native"):
            over_floor = f"{s['cpu_us'] - floor['cpu_us']:.0f}"
    auth, p99_added = "", ""
    none = summary.get((wkey, conc, "none"))
    if c.key != "none" and ok(none):
        auth = f"{s['cpu_us'] - none['cpu_us']:.0f}"
        p99_added = f"{(s['p99_ms'] - none['p99_ms']) * 1000:+.0f}"
    spread = (s["rps_max"] - s["rps_min"]) / s["rps"] * 50 if s["rps"] else 0
    errors = f"{s['non2xx']} / {s['socket_errors']}"
    notes = []
    if s["non2xx"] or s["socket_errors"]:
        errors = f"**⚠ {errors}**"
        notes.append("**⚠ errors: not a valid measurement**")
    if c.note:
        notes.append(c.note)
    if wkey == "unique" and c.key in ("jwt_authn_cache", "filter_cache", "native_cache") \
            and s["wraps"] > 1:
        notes.append(f"⚠ the token file wrapped ({s['wraps']:.1f}×): some requests hit the "
                     "cache; raise BENCH_TOKENS")
    if s["rounds"] < ROUNDS:
        notes.append(f"{s['rounds']} of {ROUNDS} rounds")
    return (f"{head} {s['rps']:,.0f} | {spread:.0f}% | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
            f"| {p99_added} | {s['cpu_us']:.0f} | {auth} | {over_floor} | {ratio} | {vs_floor} "
            f"| {errors} | {'; '.join(notes)} |")


BEGIN = "<!-- bench:results:begin (make bench rewrites this part) -->"
END = "<!-- bench:results:end -->"


def write_doc(text):
    if not DOC:
        return
    block = f"{BEGIN}\n{text}\n{END}"
    try:
        with open(DOC) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n\n"
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Latest run\n\n" + block + "\n"
    with open(DOC, "w") as f:
        f.write(doc)
    log(f"wrote {os.path.relpath(DOC, ROOT)}")


# ---------------------------------------------------------------------------------------

def main():
    started = time.time()
    os.makedirs(RUN_DIR, exist_ok=True)
    for path, what in ((ENVOY, "Envoy (make .venv/bin/envoy)"), (WASM, "the filter (make build)")):
        if not os.path.exists(path):
            sys.exit(f"bench: {path} not found: {what}")
    if not ONLY or "noop" in ONLY:
        build_noop()
    if not ONLY or any(k.startswith(("native", "noop_native")) for k in ONLY):
        if not os.path.exists(SO):
            sys.exit(f"bench: {SO} not found: the native module (make build)")
        build_native_floor()
    info = machine()
    log(f"bench: {info['nproc']} CPUs ({info['cpu']}), Envoy {info['envoy']}, "
        f"wasm {info['wasm_bytes']:,} bytes, load average {info['loadavg'][0]:.2f}")

    files = {}
    for _, _, spec, warm in WORKLOADS:
        for label, count in (spec, warm):
            if (label, count) not in files:
                files[(label, count)] = tokens.token_file(label, count, log=log)
    with open(files[("hot", 1)]) as f:
        hot = f.readline().strip()

    jwks = JwksServer(json.dumps(tokens.jwks()))
    try:
        configs = [c for c in configurations()
                   if not ONLY or c.key in ONLY or c.key.startswith("variant_")]
        for c in configs:
            if probe(c, jwks.port, hot):
                log(f"probe: {c.label}: starts, 401 without a token, 200 with, 401 tampered"
                    + (f" ({c.note})" if c.note else ""))
            else:
                log(f"probe: {c.label}: not run ({c.skipped})")
        active = [c for c in configs if not c.skipped]
        cells = [(conc, c) for conc in CONCURRENCY for c in active]
        runs, failed = {}, {}
        for rnd in range(ROUNDS):
            shift = (rnd * len(cells)) // max(1, ROUNDS)
            order = cells[shift:] + cells[:shift]
            if rnd % 2:
                order.reverse()
            for conc, c in order:
                t0 = time.time()
                try:
                    results = run_cell(c, conc, jwks.port, files, hot)
                except CellFailed as e:
                    failed[(conc, c.key)] = str(e).splitlines()[0]
                    log(f"round {rnd + 1}/{ROUNDS} c{conc} {c.label}: FAILED: {e}")
                    continue
                for wkey, r in results.items():
                    runs.setdefault((wkey, conc, c.key), []).append(r)
                desc = ", ".join(
                    f"{w} {r['requests'] / (r['duration_us'] / 1e6):,.0f}/s"
                    + (f" ⚠{r['errors']['status']}×≥400" if r["errors"]["status"] else "")
                    for w, r in results.items())
                log(f"round {rnd + 1}/{ROUNDS} c{conc} {c.label}: {desc} ({time.time() - t0:.0f}s)")
        summary = {k: summarize(v) for k, v in runs.items()}
        for (conc, key), why in failed.items():
            for c in configs:
                if c.key == key:
                    for w in workloads_of(c):
                        summary.setdefault((w, conc, key), {"failed": why})
        log(f"JWKS fetches: {jwks.fetches} in all (each Envoy with auth fetches at start only)")
    finally:
        jwks.close()
    elapsed = time.time() - started
    text = table(configs, summary, info, elapsed)
    with open(os.path.join(RUN_DIR, "results.json"), "w") as f:
        json.dump({"info": info, "runs": {"|".join(map(str, k)): v for k, v in runs.items()},
                   "failed": {"|".join(map(str, k)): v for k, v in failed.items()}}, f, indent=1)
    print()
    print(text)
    print()
    write_doc(text)


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    # Also when started in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        main()
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        stop_all()
