#!/usr/bin/env bash
# The browser test: the CRM demo page in headless Chromium against the whole
# local stack (scripts/run-local.sh --background, with the DocuSign simulator
# in interactive mode, on free ports), then the documented token-refresh
# invoke and schemathesis (scripts/schemathesis.sh, docs/openapi.yaml) against
# the same stack. Screenshots go to target/browser-artifacts/.
# Installs Debian's chromium if /usr/bin/chromium is missing (with sudo when
# not root), and playwright-core from tests/browser/package-lock.json (no
# browser download).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "browser-test: installing chromium (Debian)"
  SUDO=()
  [ "$(id -u)" = 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y chromium
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export RUN_LOCAL_DIR=.local/browser-test
export RUN_LOCAL_PORT=$(free_port) RUN_LOCAL_WATCH_PORT=$(free_port) RUN_LOCAL_SIM_PORT=$(free_port)
# The simulator, not DocuSign's sandbox, whatever the caller's environment says.
unset DOCUSIGN_INTEGRATION_KEY DOCUSIGN_SECRET_KEY DOCUSIGN_REDIRECT_URI DOCUSIGN_OAUTH_BASE_URL DOCUSIGN_ACCOUNT_ID

trap 'bash scripts/stop-local.sh' EXIT
# No reloading: a source edited meanwhile must not restart a function mid-test.
bash scripts/run-local.sh --background --no-reload
source "$RUN_LOCAL_DIR/urls.env"

ARTIFACTS_DIR=$PWD/target/browser-artifacts
mkdir -p "$ARTIFACTS_DIR"
(cd tests/browser && DEMO_URL=$DEMO_URL SIM_URL=$SIM_URL ARTIFACTS_DIR=$ARTIFACTS_DIR node --test)

echo "browser-test: token-refresh through cargo lambda invoke"
PATH=$PWD/.venv/bin:$PATH cargo lambda invoke token-refresh --invoke-address 127.0.0.1 \
  --invoke-port "$WATCH_PORT" --data-file tests/integration/fixtures/scheduled-event.json |
  tee "$ARTIFACTS_DIR/token-refresh.json"
echo
grep -q '"due"' "$ARTIFACTS_DIR/token-refresh.json"

echo "browser-test: schemathesis against the same stack (scripts/schemathesis.sh)"
bash scripts/schemathesis.sh
echo "browser-test: screenshots in $ARTIFACTS_DIR"
