#!/usr/bin/env bash
# The test command: installs what is missing, starts the AWS emulator, runs
# every test of the workspace, and stops the emulator again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/moto.sh
start_moto
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
echo "test: AWS emulator at $AWS_ENDPOINT_URL"

# The function binaries first: tests run them as Lambda would, as separate
# processes (tests/integration/src/runtime.rs), and find them already built.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"

echo "test: infra/template.yaml (cfn-lint, sam validate --lint, tests/infra)"
.venv/bin/cfn-lint infra/template.yaml
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template-file infra/template.yaml
.venv/bin/python -m pytest -q -p no:cacheprovider tests/infra

echo "test: the CRM demo page in headless Chromium against the local stack (scripts/browser-test.sh)"
bash scripts/browser-test.sh
