#!/usr/bin/env bash
# The local demo behind `make run`: moto as Cognito, a local OpenID provider as Cognito's
# hosted UI, an echo upstream, and Envoy with the filter in front of it. Everything listens on
# 127.0.0.1 and stops on Ctrl-C.
#
#   1. moto_server (the Cognito emulator); a user pool, an app client and a user are made
#      through the Cognito API with the AWS CLI
#   2. scripts/echo_upstream.py, which answers 200 with the request echoed as JSON
#   3. tests/browser/provider.mjs (npm oidc-provider on Cognito's routes; moto has no hosted
#      UI), with an RSA signing key, an app client secret and a cookie key made for this run
#   4. Envoy, with envoy/demo.yaml rendered to .run/envoy-demo.yaml
#   5. a self-check: no token → 401, bad token → 401, ID token → 200, access token → 200;
#      a browser navigation → 302 to the provider's /oauth2/authorize (PKCE S256), an XHR
#      without a session → 401; with DEMO_SELFTEST=1 and /usr/bin/chromium, a sign-in in
#      chromium (tests/browser/drive.mjs) that must reach the echo page with x-auth-email
#
# Environment (all optional):
#   DEMO_PORT=10000   Envoy listener     DEMO_ADMIN_PORT=47901   Envoy admin
#   DEMO_MOTO_PORT=47900   moto          DEMO_UPSTREAM_PORT=47902   echo upstream
#   DEMO_OP_PORT=47903   the local OpenID provider
#   DEMO_USER, DEMO_PASSWORD, DEMO_EMAIL   the demo user (in moto)
#   DEMO_SELFTEST=1   run the self-check, print it and exit (non-zero if it failed);
#                     default ports are then any free ports, so runs can overlap
#   DEMO_BUILD=wasm   which build of the filter runs: wasm (the .wasm in V8) or native (the
#                     .so as an Envoy dynamic module, from the same envoy/demo.yaml)
#   VENV, CEA_WASM, CEA_SO   where the tools (envoy, moto_server, aws) and the built filter are
#   DEMO_RUN_DIR=.run   generated config and logs (give each concurrent run its own)
# A port given explicitly must be free; a default port that is busy is replaced by a free one.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
WASM=${CEA_WASM:-$ROOT/target/wasm32-wasip1/release/cognito_edge_auth.wasm}
SO=${CEA_SO:-$ROOT/target/release/libcognito_edge_auth.so}
BUILD=${DEMO_BUILD:-wasm}
RUN=${DEMO_RUN_DIR:-$ROOT/.run}
LOGS=${RUN#"$ROOT"/}  # for messages
REGION=us-east-1
DEMO_USER=${DEMO_USER:-alice}
DEMO_PASSWORD=${DEMO_PASSWORD:-Demo-Passw0rd}
DEMO_EMAIL=${DEMO_EMAIL:-alice@example.com}
SELFTEST=0; [[ ${DEMO_SELFTEST:-0} == 0 ]] || SELFTEST=1

# moto accepts any credentials; make sure nothing from ~/.aws is picked up instead.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_PAGER=""
unset AWS_PROFILE AWS_SESSION_TOKEN

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

for tool in envoy moto_server aws python; do
  [[ -x $VENV/bin/$tool ]] || die "$VENV/bin/$tool not found; run 'make run' (it installs the tools)"
done
case $BUILD in
  wasm) [[ -f $WASM ]] || die "$WASM not found; run 'make build'"
    STATS=wasmcustom LOG_COMPONENT=wasm ;;
  native) [[ -f $SO ]] || die "$SO not found; run 'make build'"
    STATS=dynamicmodulescustom LOG_COMPONENT=dynamic_modules ;;
  *) die "DEMO_BUILD must be wasm or native, not $BUILD" ;;
esac
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
BROWSER=$ROOT/tests/browser
command -v node >/dev/null && [[ -d $BROWSER/node_modules/oidc-provider ]] ||
  die "node and tests/browser/node_modules are required for the sign-in; run 'make run' (it installs them)"
mkdir -p "$RUN"

# --- ports -----------------------------------------------------------------------------
TAKEN=""
port_free() {
  python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null && [[ " $TAKEN " != *" $1 "* ]]
}
any_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# pick_port VAR DEFAULT: $VAR if set (it must be free), else DEFAULT, else any free port.
pick_port() {
  local var=$1 port=${!1:-}
  if [[ -n $port ]]; then
    port_free "$port" || die "$var=$port: that port is in use"
  else
    port=$2; ((SELFTEST == 0)) || port=$(any_free_port)
    until port_free "$port"; do port=$(any_free_port); done
  fi
  TAKEN="$TAKEN $port"
  printf -v "$var" '%s' "$port"
}
pick_port DEMO_PORT 10000
pick_port DEMO_MOTO_PORT 47900
pick_port DEMO_ADMIN_PORT 47901
pick_port DEMO_UPSTREAM_PORT 47902
pick_port DEMO_OP_PORT 47903
MOTO_URL=http://127.0.0.1:$DEMO_MOTO_PORT
URL=http://127.0.0.1:$DEMO_PORT
# Browser sign-in goes through localhost (the provider's issuer is http://localhost:<port>;
# Chromium keeps the session's Secure cookie on http://localhost).
SITE=http://localhost:$DEMO_PORT
OP_URL=http://localhost:$DEMO_OP_PORT
OP_CLIENT_ID=demo-browser

# --- processes: started in the background, all stopped on exit --------------------------
PIDS=() NAMES=()
cleanup() {
  local pid i
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background with its output in .run/NAME.log.
# (The variables of `VAR=value start …` reach CMD's environment only.)
start() {
  local name=$1; shift
  "$@" >"$RUN/$name.log" 2>&1 &
  PIDS+=($!) NAMES+=("$name")
}
# wait_for NAME WHAT CHECK...: retries CHECK for up to 30 s while process NAME runs.
wait_for() {
  local name=$1 what=$2 i pid=${PIDS[${#PIDS[@]}-1]}; shift 2
  for ((i = 0; i < 150; i++)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$RUN/$name.log" >&2; die "$name exited (log: $LOGS/$name.log)"; }
    sleep 0.2
  done
  tail -n 30 "$RUN/$name.log" >&2
  die "timed out waiting for $what (log: $LOGS/$name.log)"
}
# status URL [CURL ARGS...]: the HTTP status code, 000 when there is no answer.
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
is() { [[ $(status "${@:2}") == "$1" ]]; }

# --- 1. moto, and a pool, a client and a user through the Cognito API -------------------
start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$DEMO_MOTO_PORT"
wait_for moto "moto on $MOTO_URL" is 200 "$MOTO_URL/moto-api/"

aws() { "$VENV/bin/aws" --endpoint-url "$MOTO_URL" --region "$REGION" --output text "$@"; }
POOL_ID=$(aws cognito-idp create-user-pool --pool-name cognito-edge-auth-demo --query UserPool.Id)
# Real Cognito refuses legacy flow names (ADMIN_NO_SRP_AUTH) mixed with ALLOW_* ones.
# --read-attributes: moto only puts email / email_verified in ID tokens when readable.
CLIENT_ID=$(aws cognito-idp create-user-pool-client --user-pool-id "$POOL_ID" --client-name demo \
  --explicit-auth-flows ALLOW_ADMIN_USER_PASSWORD_AUTH ALLOW_REFRESH_TOKEN_AUTH \
  --read-attributes email email_verified --query UserPoolClient.ClientId)
aws cognito-idp admin-create-user --user-pool-id "$POOL_ID" --username "$DEMO_USER" --message-action SUPPRESS \
  --user-attributes Name=email,Value="$DEMO_EMAIL" Name=email_verified,Value=true >/dev/null
aws cognito-idp admin-set-user-password --user-pool-id "$POOL_ID" --username "$DEMO_USER" \
  --password "$DEMO_PASSWORD" --permanent
JWKS_URI=$MOTO_URL/$POOL_ID/.well-known/jwks.json
is 200 "$JWKS_URI" || die "moto does not serve $JWKS_URI"

# --- 2. the upstream ---------------------------------------------------------------------
start upstream python3 "$ROOT/scripts/echo_upstream.py" "$DEMO_UPSTREAM_PORT"
wait_for upstream "the upstream" is 200 "http://127.0.0.1:$DEMO_UPSTREAM_PORT/"

# --- 3. the local OpenID provider, with this run's key and secrets --------------------------
# A fresh RSA key (the venv's `cryptography`, which moto depends on), readable by us only;
# the app client's secret and the session cookie key (32 bytes, base64) are random too.
(umask 077 && "$VENV/bin/python" -c 'import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
sys.stdout.buffer.write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))' >"$RUN/op-key.pem")
OP_CLIENT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
COOKIE_KEY=$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')
# Its app client may come back to either name of Envoy's listener.
start provider node "$BROWSER/provider.mjs" "$RUN/op-key.pem" demo-run-key "$OP_CLIENT_ID" "$OP_CLIENT_SECRET" \
  --port "$DEMO_OP_PORT" \
  --redirect-uri "$SITE/oauth2/callback" --redirect-uri "$URL/oauth2/callback" \
  --logout-uri "$SITE/" --logout-uri "$URL/"
wait_for provider "the OpenID provider" is 200 "http://127.0.0.1:$DEMO_OP_PORT/.well-known/openid-configuration"

# --- 4. Envoy with the filter ---------------------------------------------------------------
env LISTEN_PORT="$DEMO_PORT" ADMIN_PORT="$DEMO_ADMIN_PORT" UPSTREAM_PORT="$DEMO_UPSTREAM_PORT" \
  MOTO_PORT="$DEMO_MOTO_PORT" WASM_PATH="$WASM" USER_POOL_ID="$POOL_ID" CLIENT_ID="$CLIENT_ID" \
  OP_PORT="$DEMO_OP_PORT" OP_CLIENT_ID="$OP_CLIENT_ID" \
  python3 -c 'import os, string, sys
sys.stdout.write(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' \
  "$ROOT/envoy/demo.yaml" >"$RUN/envoy-demo.yaml"
ENVOY_CONFIG=$RUN/envoy-demo.yaml
if [[ $BUILD == native ]]; then
  # The same file with the filter as a dynamic module: its JSON configuration moves from the
  # wasm filter's `configuration` to `filter_config`; the secrets come from Envoy's own
  # environment, as they do for the VM.
  ENVOY_CONFIG=$RUN/envoy-demo-native.json
  "$VENV/bin/python" -c 'import json, sys, yaml
boot = yaml.safe_load(open(sys.argv[1]))
hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
wasm = hcm["http_filters"][0]["typed_config"]["config"]
hcm["http_filters"][0] = {"name": "envoy.filters.http.dynamic_modules", "typed_config": {
  "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
  "dynamic_module_config": {"name": "cognito_edge_auth"}, "filter_name": "cognito_edge_auth",
  "filter_config": wasm["configuration"]}}
json.dump(boot, open(sys.argv[2], "w"), indent=1)' "$RUN/envoy-demo.yaml" "$ENVOY_CONFIG"
fi
ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$(dirname "$SO") \
CEA_CLIENT_SECRET=$OP_CLIENT_SECRET CEA_COOKIE_KEY=$COOKIE_KEY \
  start envoy "$VENV/bin/envoy" -c "$ENVOY_CONFIG" --use-dynamic-base-id --concurrency 2 \
  -l warning --component-log-level "$LOG_COMPONENT:info"
ready() { [[ $(curl -s --max-time 2 "http://127.0.0.1:$DEMO_ADMIN_PORT/ready" || true) == LIVE* ]]; }
wait_for envoy "Envoy to be ready" ready
wait_for envoy "Envoy to answer 401 without a token" is 401 "$URL/hello"
# keys PROVIDER: whether the filter holds that provider's signing keys.
keys() {
  local stat=$STATS.cognito_edge_auth.jwks.$1.keys
  [[ $(curl -s --max-time 2 "http://127.0.0.1:$DEMO_ADMIN_PORT/stats?filter=$stat" || true) =~ (^|$'\n')$stat:\ [1-9] ]]
}
wait_for envoy "the OpenID provider's keys in the filter" keys local_op

# --- 5. self-check ---------------------------------------------------------------------------
TOKENS=$(aws cognito-idp admin-initiate-auth --user-pool-id "$POOL_ID" --client-id "$CLIENT_ID" \
  --auth-flow ADMIN_USER_PASSWORD_AUTH --auth-parameters "USERNAME=$DEMO_USER,PASSWORD=$DEMO_PASSWORD" \
  --query 'AuthenticationResult.[IdToken,AccessToken]')
read -r ID_TOKEN ACCESS_TOKEN <<<"$TOKENS"
RESULTS=() FAILED=0
# check LABEL EXPECTED [CURL ARGS...]: retries for up to 10 s while the keys are still loading.
check() {
  local label=$1 want=$2 got i; shift 2
  for ((i = 0; i < 50; i++)); do
    got=$(status "$@" "$URL/hello")
    [[ $got == 503 || $got == 000 ]] || break
    sleep 0.2
  done
  RESULTS+=("$label → $got")
  [[ $got == "$want" ]] || { FAILED=1; RESULTS[${#RESULTS[@]}-1]+=" (expected $want)"; }
}
check "no token" 401
check "bad token" 401 -H "Authorization: Bearer not.a.token"
check "id token" 200 -H "Authorization: Bearer $ID_TOKEN"
check "access token" 200 -H "Authorization: Bearer $ACCESS_TOKEN"
SUMMARY=$(printf '%s, ' "${RESULTS[@]}")
echo "self-check: ${SUMMARY%, }"

# Browser sign-in. curl reaches localhost at 127.0.0.1, where Envoy listens.
RESULTS=()
fail() { FAILED=1; RESULTS+=("$1 FAILED ($2)"); }
AT_LOCALHOST=(--resolve "localhost:$DEMO_PORT:127.0.0.1")
read -r got location < <(curl -s -o /dev/null -w '%{http_code} %{redirect_url}\n' --max-time 5 \
  "${AT_LOCALHOST[@]}" -H 'Accept: text/html' -H 'Sec-Fetch-Mode: navigate' -H 'Sec-Fetch-Dest: document' \
  "$SITE/" || echo 000)
if [[ $got == 302 && $location == "$OP_URL/oauth2/authorize?"* && $location == *"&code_challenge_method=S256"* ]]; then
  RESULTS+=("browser navigation → 302 to the provider's /oauth2/authorize (S256)")
else
  fail "browser navigation" "$got ${location:-without Location}; expected 302 to $OP_URL/oauth2/authorize with code_challenge_method=S256"
fi
got=$(status "${AT_LOCALHOST[@]}" -H 'Accept: */*' -H 'Sec-Fetch-Mode: cors' -H 'Sec-Fetch-Dest: empty' "$SITE/api/data")
if [[ $got == 401 ]]; then RESULTS+=("xhr without session → 401"); else fail "xhr without session" "$got, expected 401"; fi
if ((SELFTEST)) && [[ -x /usr/bin/chromium ]]; then
  # A real sign-in in chromium (tests/browser/drive.mjs, every wait bounded): the echo page
  # reached with the identity, then logout at the provider's /logout.
  rm -rf "$RUN/chromium-profile"
  node "$BROWSER/drive.mjs" "$SITE" "$OP_URL" "$RUN/chromium-profile" demo >"$RUN/browser.json" 2>"$RUN/browser.log" &
  PIDS+=($!) NAMES+=(browser)
  wait "${PIDS[${#PIDS[@]}-1]}" || true
  rm -rf "$RUN/chromium-profile"
  if outcome=$(python3 - "$RUN/browser.json" "$SITE" "$OP_URL" <<'PY'
import json, sys
path, site, op = sys.argv[1:]
try:
    seen = json.loads(open(path).read().strip().splitlines()[-1])
except (ValueError, IndexError) as e:
    sys.exit(f"the driver printed no JSON: {e}")
if seen.get("error"):
    sys.exit(f"{seen['error']} at {seen.get('error_url')}")
headers = (seen.get("after_login") or {}).get("headers", {})
if seen.get("after_login_url") != site + "/" or headers.get("x-auth-email") != "alice@example.com":
    sys.exit(f"ended at {seen.get('after_login_url')} with x-auth-email {headers.get('x-auth-email')!r}")
if not str(seen.get("logout_url", "")).startswith(op + "/logout?") or not seen.get("logout_cleared"):
    sys.exit(f"logout ended at {seen.get('logout_url')}, session cleared: {seen.get('logout_cleared')}")
print(f"browser sign-in → echo page as {headers['x-auth-email']} ({headers.get('x-auth-provider')}), "
      "logout → the provider's /logout")
PY
  ); then
    RESULTS+=("$outcome")
  else
    fail "browser sign-in" "see $LOGS/browser.json, $LOGS/browser.log"
  fi
elif ((SELFTEST)); then
  RESULTS+=("browser sign-in → skipped (no /usr/bin/chromium)")
fi
SUMMARY=$(printf '%s, ' "${RESULTS[@]}")
echo "self-check sign-in: ${SUMMARY%, }"
if ((SELFTEST)); then
  ((FAILED == 0)) || { echo "self-check FAILED; Envoy log: $LOGS/envoy.log" >&2; tail -n 20 "$RUN/envoy.log" >&2; }
  exit "$FAILED"
fi
((FAILED == 0)) || echo "WARNING: self-check FAILED; see $LOGS/envoy.log" >&2

# --- 6. how to try it, then wait for Ctrl-C ----------------------------------------------------
# q WORD: WORD quoted for a shell, only when it needs it.
q() { if [[ $1 =~ ^[A-Za-z0-9_./,=@:+-]+$ ]]; then printf '%s' "$1"; else printf '%q' "$1"; fi; }
login() { # the copy-paste command that prints a token of kind $1
  printf '%s' "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test $(q "$VENV/bin/aws") \\
    --endpoint-url $MOTO_URL --region $REGION cognito-idp admin-initiate-auth \\
    --user-pool-id $POOL_ID --client-id $CLIENT_ID --auth-flow ADMIN_USER_PASSWORD_AUTH \\
    --auth-parameters $(q "USERNAME=$DEMO_USER,PASSWORD=$DEMO_PASSWORD") \\
    --query AuthenticationResult.$1 --output text"
}
cat <<EOF

cognito-edge-auth demo is running
  Envoy    $URL   (admin http://127.0.0.1:$DEMO_ADMIN_PORT)
  moto     $MOTO_URL   user pool $POOL_ID, app client $CLIENT_ID
  user     $DEMO_USER / $DEMO_PASSWORD ($DEMO_EMAIL)
  sign-in  $OP_URL   local OpenID provider (tests/browser/provider.mjs), app client $OP_CLIENT_ID
  filter   the $BUILD build (DEMO_BUILD=wasm|native)
  config   ${ENVOY_CONFIG#"$ROOT"/}   logs $LOGS/{envoy,moto,upstream,provider}.log

Sign in with a browser (the local provider stands in for Cognito's hosted UI):
  open     $SITE/
  type     any login name and any password at the provider's form, e.g. alice / any
           (you are then <login>@example.com, email verified)
  see      the echo page: what the upstream got, with x-auth-email, x-auth-principal, …
  log out  $SITE/logout   (then the provider asks whether to end its own session too)

Get an ID token and an access token:
  TOKEN=\$($(login IdToken))
  ACCESS_TOKEN=\$($(login AccessToken))

Call through Envoy:
  curl -i $URL/hello                                            # 401
  curl -i -H "Authorization: Bearer \$TOKEN" $URL/hello          # 200, the upstream's echo
  curl -i -H "Authorization: Bearer \$ACCESS_TOKEN" $URL/hello   # 200

Ctrl-C stops moto, the upstream, the provider and Envoy.
EOF
while true; do
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || die "${NAMES[$i]} stopped unexpectedly (log: $LOGS/${NAMES[$i]}.log)"
  done
  sleep 1
done
