#!/usr/bin/env bash
# Fuzzes every parser of outside input (fuzz/fuzz_targets/*) for a bounded
# time each, with libFuzzer, and writes the executions per target to
# target/fuzz-summary.md. Builds with `--dev` (the fuzz crate's dev profile
# is opt-level 1; see fuzz/Cargo.toml): cargo fuzz's release mode (opt-level
# 3, one codegen unit per crate) takes far longer to build than its faster
# executions give back in a bounded CI run.
#
#   scripts/fuzz.sh [seconds-per-target]     (default 30)
#   FUZZ_SANITIZER=address scripts/fuzz.sh   (default none)
#
# The address sanitizer works on the stable toolchain, but costs a third
# more build time and runs about a tenth as many executions; the targets are
# safe Rust, where what fuzzing finds is panics (debug assertions and
# overflow checks are on), so the bounded CI run goes without it. Use it for
# longer runs.
#
# Installs cargo-fuzz (pinned) into ~/.cargo/bin if it is missing. Works on
# the stable toolchain: cargo fuzz passes nightly-only rustc flags
# (-Zsanitizer, -Cpasses=sancov...), which RUSTC_BOOTSTRAP=1 lets stable
# accept. Each run starts from the committed seeds (fuzz/corpus/<target>)
# and the inputs of earlier findings (fuzz/regressions/<target>); what it
# finds on the way stays in target/fuzz/corpus/<target>. A crash fails the
# script, with the input saved under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-30}
SANITIZER=${FUZZ_SANITIZER:-none}
CARGO_FUZZ_VERSION=0.13.2
TARGET_DIR=target/fuzz
SUMMARY=target/fuzz-summary.md
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd fuzz
# The committed lock file is the one used (cargo fuzz has no --locked).
if ! cargo metadata --locked --format-version 1 >/dev/null; then
  echo "fuzz: fuzz/Cargo.lock is out of date (shared's dependencies changed?):" \
    "run 'cargo metadata --format-version 1 >/dev/null' in fuzz/ and commit fuzz/Cargo.lock" >&2
  exit 1
fi
echo "fuzz: building every target (sanitizer: $SANITIZER)"
cargo fuzz build --dev -s "$SANITIZER" --target-dir "../$TARGET_DIR"
targets=$(cargo fuzz list)

mkdir -p "../$TARGET_DIR/logs"
{
  echo "# Fuzzing: ${SECONDS_PER_TARGET} s per target, sanitizer: $SANITIZER"
  echo
  echo "| target | executions | exec/s | corpus | result |"
  echo "| --- | ---: | ---: | ---: | --- |"
} > "../$SUMMARY"
failed=()
for t in $targets; do
  work="../$TARGET_DIR/corpus/$t"
  log="../$TARGET_DIR/logs/$t.log"
  mkdir -p "$work" "corpus/$t" "regressions/$t"
  echo "fuzz: $t for ${SECONDS_PER_TARGET} s"
  result=ok
  # The first corpus directory is the one libFuzzer adds to.
  if ! cargo fuzz run --dev -s "$SANITIZER" --target-dir "../$TARGET_DIR" "$t" "$work" "corpus/$t" "regressions/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    result="**crash** (see fuzz/artifacts/$t/, target/fuzz/logs/$t.log)"
    failed+=("$t")
    tail -40 "$log"
  fi
  # libFuzzer's final stats, else its last status line (`#N DONE ...`).
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
  printf '| `%s` | %s | %s | %s | %s |\n' "$t" "${execs:-?}" "${rate:-?}" "${corpus:-?}" "$result" >> "../$SUMMARY"
done
cat "../$SUMMARY"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --dev -s $SANITIZER <target> artifacts/<target>/<file>)" >&2
  exit 1
fi
