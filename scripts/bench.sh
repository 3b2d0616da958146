#!/usr/bin/env bash
# The benchmark: cold start, memory, size, warm latency and sweep throughput,
# each figure beside a baseline measured in the same run (BENCHMARKS.md).
#
#   scripts/bench.sh           full run: release builds (x86_64, and arm64 for
#                              the zipped sizes when the target and zig are
#                              there), 11 cold starts, 300 latency samples,
#                              sweeps over 1,000 and 10,000 due tenants
#   scripts/bench.sh --short   CI: small counts; release binaries if they are
#                              built and current, else debug ones; fails only
#                              if something does not work, never on a timing
#
# Prints one table; also written to target/bench/table.md (logs beside it).
set -euo pipefail
cd "$(dirname "$0")/.."

short=""
case "${1:-}" in
  "") ;;
  --short) short="--short" ;;
  *) echo "usage: scripts/bench.sh [--short]" >&2; exit 2 ;;
esac

FUNCTIONS=(consent-start oauth-callback connection send-envelope token-refresh)
out=target/bench
mkdir -p "$out"

bash scripts/setup.sh

# The AWS emulator: moto's server, with the one change that keeps a
# TransactWriteItems from costing time proportional to the table
# (bench/moto_server.py says why).
source scripts/moto.sh
trap 'kill "${MOTO_PID:-}" 2>/dev/null || true' EXIT
MOTO_SERVER=".venv/bin/python bench/moto_server.py" MOTO_LOG="$out/moto.log" start_moto
echo "bench: AWS emulator at $AWS_ENDPOINT_URL"

packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done

# Release binaries are current when no source they are built from is newer.
newer_source() {
  local binary=$1; shift
  [ -n "$(find "$@" Cargo.toml Cargo.lock -type f -newer "$binary" -print -quit 2>/dev/null)" ]
}
release_current() {
  local f
  for f in "${FUNCTIONS[@]}" hello-baseline bench-runner; do [ -x "target/release/$f" ] || return 1; done
  for f in "${FUNCTIONS[@]}"; do
    newer_source "target/release/$f" shared functions && return 1
  done
  newer_source target/release/hello-baseline bench/hello-baseline && return 1
  newer_source target/release/bench-runner shared tests/docusign-sim tests/integration bench/runner && return 1
  return 0
}

arm64_args=()
if [ -z "$short" ]; then
  # One build for the functions and the runner (the runner's baseline calls
  # run optimized too), one for the bare baseline on its own.
  cargo build --release --locked -p bench-runner "${packages[@]}"
  cargo build --release --locked -p hello-baseline
  bins=target/release
  # arm64, as deployed (infra/template.yaml: cargo lambda build --release --arm64).
  if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
     && .venv/bin/python -c 'import ziglang' 2>/dev/null; then
    export PATH="$PWD/.venv/bin:$PATH"
    if cargo lambda build --release --arm64 --locked "${packages[@]}" \
       && cargo lambda build --release --arm64 --locked -p hello-baseline; then
      arm64_args=(--arm64 target/lambda)
    else
      echo "bench: the arm64 build failed; zipped sizes will be of the x86_64 binaries" >&2
    fi
  else
    echo "bench: no aarch64-unknown-linux-gnu target or no zig; zipped sizes will be of the x86_64 binaries" >&2
  fi
elif release_current; then
  bins=target/release
else
  cargo build --locked --workspace --bins
  bins=target/debug
fi
echo "bench: binaries from $bins"

"$bins/bench-runner" $short --bins "$bins" "${arm64_args[@]}" --out "$out/table.md" >"$out/runner.log"
echo
cat "$out/table.md"
