#!/usr/bin/env bash
# The test command.
#
#   scripts/test.sh [--fast] [cargo test arguments...]
#
# Full tier (no --fast; what CI runs, .ci/run): checks the prerequisites,
# checks the Markdown links, installs what is missing (scripts/setup.sh
# test), starts the AWS emulator, builds and runs every test of the
# workspace, lints and checks infra/template.yaml, and ends with the browser
# test, the token-refresh invoke and schemathesis against the local stack
# (scripts/browser-test.sh).
#
# --fast: the developer's loop: the link check and `cargo test --workspace`
# (unit, property and integration tests against moto and the simulator);
# no apt-get, npm, browser, schemathesis or infra tools (scripts/setup.sh
# fast installs moto only).
#
# The build is `cargo build --workspace --bins --locked`, the very build
# scripts/run-local.sh makes, so neither rebuilds after the other.
set -euo pipefail
cd "$(dirname "$0")/.."

FAST=0
if [ "${1:-}" = --fast ]; then
  FAST=1
  shift
elif [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

# ----- prerequisites: all named at once, before anything is installed -------
missing=()
command -v cargo >/dev/null 2>&1 ||
  missing+=("cargo (Rust): install rustup from https://rustup.rs, then open a new shell")
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
  missing+=("python3 3.11 or newer with venv (found: $have): e.g. apt-get install python3 python3-venv on Debian 12, or pyenv")
fi
if [ "$FAST" = 0 ]; then
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
    missing+=("node 20 or newer with npm (found: $(node --version 2>/dev/null || echo none)): https://nodejs.org or NodeSource's Debian packages; or run scripts/test.sh --fast, which needs no browser")
  fi
  if [ ! -x /usr/bin/chromium ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      missing+=("chromium at /usr/bin/chromium (no apt-get here to install Debian's package): install Chromium there, or run scripts/test.sh --fast")
    elif [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
      missing+=("chromium: run 'sudo apt-get install chromium' once (this script installs it only as root or with password-less sudo), or run scripts/test.sh --fast")
    fi
  fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test: missing prerequisites (see the README's Prerequisites):" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

echo "test: Markdown links (scripts/check-links.py)"
python3 scripts/check-links.py

if [ "$FAST" = 1 ]; then
  bash scripts/setup.sh fast
else
  bash scripts/setup.sh test
  if [ ! -x /usr/bin/chromium ]; then
    echo "test: installing chromium (Debian), for the browser test at the end"
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    "${SUDO[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y chromium
  fi
fi

source scripts/moto.sh
start_moto
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
echo "test: AWS emulator at $AWS_ENDPOINT_URL"

# The function binaries first: tests run them as Lambda would, as separate
# processes (tests/integration/src/runtime.rs), and find them already built.
# The first build on a 2-core machine takes about 6 minutes (the AWS SDK).
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"

if [ "$FAST" = 1 ]; then
  echo "test: fast tier passed (the full suite, scripts/test.sh, also runs the infra checks, the browser test and schemathesis)"
  exit 0
fi

echo "test: infra/template.yaml (cfn-lint, sam validate --lint, tests/infra)"
.venv/bin/cfn-lint infra/template.yaml
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template-file infra/template.yaml
.venv/bin/python -m pytest -q -p no:cacheprovider tests/infra
echo "test: checkov on infra/template.yaml (skips and their reasons: .checkov.yaml)"
.venv/checkov/bin/checkov --config-file .checkov.yaml -f infra/template.yaml

echo "test: the CRM demo page in headless Chromium against the local stack (scripts/browser-test.sh)"
bash scripts/browser-test.sh
