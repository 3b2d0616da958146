#!/usr/bin/env bash
# Runs the whole connector on this machine with one command:
#
#   scripts/run-local.sh [--background] [--no-reload]
#
# Installs what is missing (scripts/setup.sh local: moto and cargo-lambda),
# builds the workspace as scripts/test.sh does (a first build takes about 6
# minutes on 2 cores), and starts, each on 127.0.0.1 only:
#   - moto's server (DynamoDB + KMS) with the table from
#     infra/dynamodb-table.json and a KMS key (scripts/local_aws.py);
#   - our DocuSign simulator in interactive mode (a consent page with Accept
#     and Cancel), unless DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_SECRET_KEY and
#     DOCUSIGN_REDIRECT_URI are all set: then the functions use DocuSign's
#     sandbox (account-d.docusign.com) and no simulator is started;
#   - `cargo lambda watch` with the five functions and their configuration,
#     the API routes mapped by cargo-lambda's router
#     (scripts/cargo-lambda-local.toml);
#   - a local gateway (scripts/local_gateway.py) on one origin: the API routes
#     and the CRM demo page at /demo/.
# It prints the URLs once every function answers and stays in the
# foreground; Ctrl-C (or SIGTERM) stops everything it started.
#
#   --background  return once everything answers; the pids are in
#                 .local/pids and scripts/stop-local.sh stops them
#                 (or RUN_LOCAL_BACKGROUND=1)
#   --no-reload   do not rebuild and restart functions when sources change
#                 (cargo lambda watch --ignore-changes; or RUN_LOCAL_RELOAD=0)
#
# Ports (127.0.0.1): RUN_LOCAL_PORT (gateway and demo page, default 8080),
# RUN_LOCAL_WATCH_PORT (cargo lambda watch, 9000), RUN_LOCAL_SIM_PORT
# (simulator, 9100); moto takes a free one. RUN_LOCAL_DIR (default .local)
# holds the pids, the URLs (urls.env), the logs (logs/) and the CRM JWT
# secret of the run (crm-jwt-secret, mode 600) for scripts/dev-token.
set -euo pipefail
cd "$(dirname "$0")/.."
START_NS=$(date +%s%N)

BACKGROUND=${RUN_LOCAL_BACKGROUND:-0}
RELOAD=${RUN_LOCAL_RELOAD:-1}
for arg in "$@"; do
  case "$arg" in
    --background) BACKGROUND=1 ;;
    --no-reload) RELOAD=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-local: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

STATE_DIR=${RUN_LOCAL_DIR:-.local}
PORT=${RUN_LOCAL_PORT:-8080}
WATCH_PORT=${RUN_LOCAL_WATCH_PORT:-9000}
SIM_PORT=${RUN_LOCAL_SIM_PORT:-9100}
FUNCTIONS=(consent-start oauth-callback connection send-envelope token-refresh)
LOGS=$STATE_DIR/logs
PIDS_FILE=$STATE_DIR/pids
mkdir -p "$LOGS"

say() { echo "run-local: $*"; }
elapsed() { awk -v a="$START_NS" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

if [ -s "$PIDS_FILE" ]; then
  while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
      grep -q -E 'moto_server|docusign-sim|cargo-lambda|local_gateway.py'; then
      echo "run-local: already running ($name, pid $pid); stop it with scripts/stop-local.sh" >&2
      exit 1
    fi
  done <"$PIDS_FILE"
  rm -f "$PIDS_FILE"
fi

# ----- which DocuSign --------------------------------------------------------
if [ -n "${DOCUSIGN_INTEGRATION_KEY:-}${DOCUSIGN_SECRET_KEY:-}${DOCUSIGN_REDIRECT_URI:-}" ]; then
  for v in DOCUSIGN_INTEGRATION_KEY DOCUSIGN_SECRET_KEY DOCUSIGN_REDIRECT_URI; do
    if [ -z "${!v:-}" ]; then
      echo "run-local: $v is not set; set all three of DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_SECRET_KEY and DOCUSIGN_REDIRECT_URI for DocuSign's sandbox, or none for the simulator" >&2
      exit 2
    fi
  done
  MODE=sandbox
  # The browser comes back to the redirect URI: when it is this machine's,
  # the gateway listens on its port and the demo page lives on its origin.
  read -r REDIRECT_LOCAL REDIRECT_ORIGIN REDIRECT_PORT REDIRECT_PATH < <(python3 -c '
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
local = u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost")
print(int(local), "%s://%s" % (u.scheme, u.netloc), u.port or 80, u.path or "/")' "$DOCUSIGN_REDIRECT_URI")
  if [ "$REDIRECT_LOCAL" = 1 ]; then
    PORT=$REDIRECT_PORT
    ORIGIN=$REDIRECT_ORIGIN
  else
    ORIGIN=http://127.0.0.1:$PORT
    say "note: DOCUSIGN_REDIRECT_URI is not http://127.0.0.1 or http://localhost; DocuSign will send the browser there, so it must reach $ORIGIN/docusign/callback"
  fi
  if [ "$REDIRECT_PATH" != /docusign/callback ]; then
    say "note: DOCUSIGN_REDIRECT_URI's path is $REDIRECT_PATH, the local callback route is /docusign/callback"
  fi
  unset DOCUSIGN_OAUTH_BASE_URL
  export DOCUSIGN_ENVIRONMENT=sandbox
  DOCUSIGN_LABEL="DocuSign sandbox (account-d.docusign.com)"
else
  MODE=simulator
  ORIGIN=http://127.0.0.1:$PORT
  export DOCUSIGN_INTEGRATION_KEY=local-integration-key
  DOCUSIGN_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
  export DOCUSIGN_SECRET_KEY
  export DOCUSIGN_REDIRECT_URI=$ORIGIN/docusign/callback
  export DOCUSIGN_OAUTH_BASE_URL=http://127.0.0.1:$SIM_PORT
  # The simulator is also the eSignature host its userinfo names.
  export DOCUSIGN_API_HOSTS=127.0.0.1:$SIM_PORT
  export DOCUSIGN_ENVIRONMENT=sandbox
  DOCUSIGN_LABEL="DocuSign simulator at $DOCUSIGN_OAUTH_BASE_URL"
fi

port_free() {
  python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
for p in "$PORT" "$WATCH_PORT" $([ "$MODE" = simulator ] && echo "$SIM_PORT"); do
  if ! port_free "$p"; then
    echo "run-local: port $p on 127.0.0.1 is in use (set RUN_LOCAL_PORT, RUN_LOCAL_WATCH_PORT or RUN_LOCAL_SIM_PORT)" >&2
    exit 1
  fi
done

# ----- tools and build -------------------------------------------------------
bash scripts/setup.sh local
export PATH=$PWD/.venv/bin:$PATH
# The workspace's binaries, exactly as scripts/test.sh builds them (same
# profile, same features unified over the workspace): the tests and the
# browser test reuse this build, and cargo lambda watch only relinks.
if [ ! -x "${CARGO_TARGET_DIR:-target}/debug/docusign-sim" ]; then
  say "building the workspace (cargo build --workspace --bins --locked): a first build takes about 6 minutes on 2 cores, most of it the AWS SDK; later runs take seconds"
else
  say "building the workspace (cargo build --workspace --bins --locked; incremental)"
fi
cargo build --workspace --bins --locked
say "set up and built in $(elapsed) s"

# ----- processes -------------------------------------------------------------
STARTED=()   # "name pid", in start order
record() {
  STARTED+=("$1 $2")
  printf '%s\n' "${STARTED[@]}" >"$PIDS_FILE"
}
stop_all() {
  # Stops the processes recorded in $PIDS_FILE with their process groups.
  RUN_LOCAL_DIR=$STATE_DIR bash scripts/stop-local.sh >/dev/null
  STARTED=()
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${#STARTED[@]}" -gt 0 ]; then
    say "stopping"
    stop_all
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "run-local: $1" >&2
  [ -n "${2:-}" ] && [ -f "$2" ] && { echo "--- last lines of $2:" >&2; tail -n 30 "$2" >&2; }
  exit 1
}

# Wait until URL answers with one of the statuses (comma separated).
wait_http() {
  python3 - "$@" <<'EOF' || return 1
import sys, time, urllib.request, urllib.error
url, statuses, timeout = sys.argv[1], {int(s) for s in sys.argv[2].split(",")}, float(sys.argv[3])
deadline = time.time() + timeout
while time.time() < deadline:
    try:
        code = urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = None
    if code in statuses:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
EOF
}

unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
source scripts/moto.sh
# With job control on, moto gets a process group of its own, like the
# others: a Ctrl-C in the terminal reaches only this script, which stops it.
set -m
MOTO_LOG=$LOGS/moto.log start_moto || fail "moto_server did not start" "$LOGS/moto.log"
set +m
record moto "$MOTO_PID"
AWS_VARS=$(.venv/bin/python scripts/local_aws.py) || fail "could not create the table and key in moto" "$LOGS/moto.log"
eval "$AWS_VARS"
export TOKEN_TABLE TOKEN_KEY_ID
say "AWS emulator at $AWS_ENDPOINT_URL: table $TOKEN_TABLE, KMS key $TOKEN_KEY_ID"

CRM_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
export CRM_JWT_SECRET
# For scripts/dev-token, which mints JWTs for this run: readable by this
# user only, never printed; replaced by the next run.
(umask 077 && rm -f "$STATE_DIR/crm-jwt-secret" && printf '%s' "$CRM_JWT_SECRET" >"$STATE_DIR/crm-jwt-secret")
export CRM_ORIGIN=$ORIGIN

if [ "$MODE" = simulator ]; then
  # The simulator reads the client id, secret and redirect URI from the
  # environment (nothing secret on its command line).
  setsid "${CARGO_TARGET_DIR:-target}/debug/docusign-sim" --addr "127.0.0.1:$SIM_PORT" --interactive \
    >"$LOGS/docusign-sim.log" 2>&1 </dev/null &
  record docusign-sim $!
fi

WATCH_ARGS=(-A 127.0.0.1 -P "$WATCH_PORT" --global scripts/cargo-lambda-local.toml --disable-cors)
[ "$RELOAD" = 0 ] && WATCH_ARGS+=(--ignore-changes)
setsid cargo lambda watch "${WATCH_ARGS[@]}" >"$LOGS/cargo-lambda-watch.log" 2>&1 </dev/null &
record cargo-lambda-watch $!

setsid .venv/bin/python scripts/local_gateway.py --port "$PORT" \
  --upstream "http://127.0.0.1:$WATCH_PORT" --docusign "$DOCUSIGN_LABEL" \
  >"$LOGS/gateway.log" 2>&1 </dev/null &
record gateway $!

if [ "$MODE" = simulator ]; then
  wait_http "$DOCUSIGN_OAUTH_BASE_URL/_sim/clock" 200 30 || fail "the DocuSign simulator did not start" "$LOGS/docusign-sim.log"
fi
wait_http "http://127.0.0.1:$PORT/healthz" 200 30 || fail "the gateway did not start" "$LOGS/gateway.log"

python3 - "$WATCH_PORT" <<'EOF' || fail "cargo lambda watch did not start" "$LOGS/cargo-lambda-watch.log"
import socket, sys, time
deadline = time.time() + 300
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF

# Every function answers once: the HTTP ones through the gateway (requests
# without side effects), token-refresh with the documented invoke line.
say "waiting for the functions (cargo lambda watch starts each on its first call)"
python3 - "http://127.0.0.1:$PORT" <<'EOF' &
import json, sys, threading, urllib.request, urllib.error
base = sys.argv[1]
admin = json.load(urllib.request.urlopen(base + "/demo/config.json", timeout=10))["tokens"]["admin"]
checks = [  # method, path, status that proves the function itself answered
    ("GET", "/docusign/connection", 200),
    ("GET", "/docusign/consent", 405),
    ("GET", "/docusign/envelopes", 405),
    ("GET", "/docusign/callback", 400),
]
failed = []
def check(method, path, want):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": "Bearer " + admin})
    try:
        code = urllib.request.urlopen(req, timeout=900).status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError as e:
        code = repr(e)
    if code != want:
        failed.append("%s %s answered %s, expected %s" % (method, path, code, want))
threads = [threading.Thread(target=check, args=c) for c in checks]
for t in threads: t.start()
for t in threads: t.join()
for f in failed: print("run-local: " + f, file=sys.stderr)
sys.exit(1 if failed else 0)
EOF
HTTP_CHECK=$!
REFRESH_OUT=$LOGS/token-refresh-invoke.json
if ! cargo lambda invoke token-refresh --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
  --data-file tests/integration/fixtures/scheduled-event.json >"$REFRESH_OUT" 2>&1 ||
  ! grep -q '"due"' "$REFRESH_OUT"; then
  cat "$REFRESH_OUT" >&2
  fail "token-refresh did not answer" "$LOGS/cargo-lambda-watch.log"
fi
wait "$HTTP_CHECK" || fail "a function did not answer as expected" "$LOGS/cargo-lambda-watch.log"

SIM_URL=""
[ "$MODE" = simulator ] && SIM_URL=$DOCUSIGN_OAUTH_BASE_URL
DEV_TOKEN_ENV=""
[ "$STATE_DIR" = .local ] || DEV_TOKEN_ENV="RUN_LOCAL_DIR=$STATE_DIR "
cat >"$STATE_DIR/urls.env" <<EOF
DEMO_URL=$ORIGIN/demo/
API_BASE=$ORIGIN
SIM_URL=$SIM_URL
WATCH_URL=http://127.0.0.1:$WATCH_PORT
WATCH_PORT=$WATCH_PORT
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
DOCUSIGN_MODE=$MODE
EOF

cat <<EOF

run-local: ready in $(elapsed) s
  CRM demo page   $ORIGIN/demo/
  API base        $ORIGIN   (POST /docusign/consent, GET /docusign/callback,
                  POST /docusign/envelopes, GET|DELETE /docusign/connection)
  DocuSign        $DOCUSIGN_LABEL
  functions       http://127.0.0.1:$WATCH_PORT (cargo lambda watch, same routes)
  AWS emulator    $AWS_ENDPOINT_URL (table $TOKEN_TABLE)
  logs            $LOGS/
  token refresh   cargo lambda invoke token-refresh --invoke-address 127.0.0.1 --invoke-port $WATCH_PORT --data-file tests/integration/fixtures/scheduled-event.json
  a CRM JWT       ${DEV_TOKEN_ENV}scripts/dev-token admin|user   (curl examples: docs/LOCAL.md)
EOF

if [ "$BACKGROUND" = 1 ]; then
  echo "  stop with      ${DEV_TOKEN_ENV}scripts/stop-local.sh"
  trap - EXIT INT TERM
  exit 0
fi
echo "  stop with      Ctrl-C"
# Stay in the foreground until interrupted or until something stops.
while true; do
  for entry in "${STARTED[@]}"; do
    read -r name pid <<<"$entry"
    if ! kill -0 "$pid" 2>/dev/null; then
      fail "$name (pid $pid) stopped" "$LOGS/$name.log"
    fi
  done
  sleep 1 &
  wait $! || true
done
