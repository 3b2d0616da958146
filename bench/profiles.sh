#!/usr/bin/env bash
# Compares [profile.release] variants on ONE function (default send-envelope,
# FUNCTION=... to change): binary and zipped size, init, peak RSS and warm
# POST /docusign/envelopes latency. Each variant is built into its own
# target directory with `--config` overrides: Cargo.toml is not changed.
# About 10 minutes of build per variant on 2 cores (cargo reuses a variant
# whose snapshot did not change).
#
#   bench/profiles.sh [--short]
#   VARIANTS="current opt-s" bench/profiles.sh     # only these
set -euo pipefail
cd "$(dirname "$0")/.."
short=${1:-}
fn=${FUNCTION:-send-envelope}
out=target/bench
mkdir -p "$out"

# name | cargo --config overrides on top of the current profile
# (opt-level 3, lto "thin", codegen-units 1, strip)
variants=(
  "current|"
  "opt-s|profile.release.opt-level=\"s\""
  "opt-z|profile.release.opt-level=\"z\""
  "lto-fat|profile.release.lto=\"fat\""
  "panic-abort|profile.release.panic=\"abort\""
  "s-fat|profile.release.opt-level=\"s\";profile.release.lto=\"fat\""
)
if [ -n "${VARIANTS:-}" ]; then read -r -a only <<<"$VARIANTS"; else only=(); fi

# Every variant is built from one snapshot of the sources, so that edits made
# meanwhile do not fall between variants.
src=target/bench-profiles/src
rm -rf "$src" && mkdir -p "$src"
tar --exclude=./target --exclude=./.venv --exclude=./.git --exclude=./.aws-sam -cf - . | tar -xf - -C "$src"

args=()
for v in "${variants[@]}"; do
  name=${v%%|*}; overrides=${v#*|}
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  config=()
  IFS=';' read -r -a parts <<<"$overrides"
  for p in "${parts[@]}"; do [ -n "$p" ] && config+=(--config "$p"); done
  echo "profiles: building $fn ($name)"
  CARGO_TARGET_DIR="$PWD/target/bench-profiles/$name" cargo build --release --locked \
    --manifest-path "$src/Cargo.toml" -p "$fn" "${config[@]}"
  args+=(--variant "$name=target/bench-profiles/$name/release/$fn")
done

# The runner and the baseline, as scripts/bench.sh builds them (a no-op after it).
packages=()
for f in consent-start oauth-callback connection send-envelope token-refresh; do packages+=(-p "$f"); done
cargo build --release --locked -p bench-runner "${packages[@]}"
cargo build --release --locked -p hello-baseline

bash scripts/setup.sh
source scripts/moto.sh
trap 'kill "${MOTO_PID:-}" 2>/dev/null || true' EXIT
MOTO_SERVER=".venv/bin/python bench/moto_server.py" MOTO_LOG="$out/moto-profiles.log" start_moto
target/release/bench-runner --profiles --function "$fn" $short --hello target/release/hello-baseline \
  "${args[@]}" --out "$out/profiles.md" >"$out/profiles.log"
echo
cat "$out/profiles.md"
