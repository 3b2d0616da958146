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

cargo test --workspace --locked "$@"
