#!/usr/bin/env bash
# Installs cargo-nextest (the end-to-end test runner of `make e2e`) into cargo's bin directory:
# the project's pre-built binary of the 0.9 series (seconds), else from crates.io (minutes).
set -euo pipefail
if cargo nextest --version >/dev/null 2>&1; then
	exit 0
fi
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case "$(uname -sm)" in
	"Linux x86_64") platform=linux ;;
	"Linux aarch64") platform=linux-arm ;;
	"Darwin "*) platform=mac ;;
	*) platform= ;;
esac
if [ -n "$platform" ] && command -v curl >/dev/null; then
	echo "installing cargo-nextest 0.9 (pre-built, $platform) into $bin"
	mkdir -p "$bin"
	if curl -LsSf --retry 3 "https://get.nexte.st/0.9/$platform" | tar zxf - -C "$bin" &&
		cargo nextest --version >/dev/null 2>&1; then
		exit 0
	fi
	echo "the pre-built cargo-nextest did not install; building it from crates.io"
fi
cargo install cargo-nextest --locked
