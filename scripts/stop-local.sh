#!/usr/bin/env bash
# Stops what `scripts/run-local.sh` started (in the background or in another
# terminal): the processes recorded in .local/pids (or $RUN_LOCAL_DIR/pids),
# each with its process group, newest first. Stops nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

PIDS_FILE=${RUN_LOCAL_DIR:-.local}/pids
if [ ! -s "$PIDS_FILE" ]; then
  echo "stop-local: nothing recorded in $PIDS_FILE"
  exit 0
fi

# What each recorded process runs: a pid that now runs something else (the
# stack died and the pid was reused) is not touched.
ours() {
  local pattern
  case "$1" in
    moto) pattern=moto_server ;;
    docusign-sim) pattern=docusign-sim ;;
    cargo-lambda-watch) pattern=cargo-lambda ;;
    gateway) pattern=local_gateway.py ;;
    *) return 1 ;;
  esac
  [[ "$2" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

mapfile -t ENTRIES < <(tac "$PIDS_FILE")
LIVE=()
for entry in "${ENTRIES[@]}"; do
  read -r name pid <<<"$entry"
  ours "$name" "$pid" && LIVE+=("$entry")
done
ENTRIES=("${LIVE[@]}")
for entry in "${ENTRIES[@]}"; do
  read -r name pid <<<"$entry"
  # run-local starts each process as its own process group leader; should
  # one have no group of its own, only the pid.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
done

for _ in $(seq 1 50); do
  alive=""
  for entry in "${ENTRIES[@]}"; do
    read -r name pid <<<"$entry"
    if kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null; then alive="$alive $name"; fi
  done
  [ -z "$alive" ] && break
  sleep 0.2
done
if [ -n "$alive" ]; then
  echo "stop-local: still running after 10 s:$alive; sending SIGKILL"
  for entry in "${ENTRIES[@]}"; do
    read -r name pid <<<"$entry"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
fi
rm -f "$PIDS_FILE"
if [ "${#ENTRIES[@]}" -eq 0 ]; then
  echo "stop-local: nothing recorded is still running"
else
  echo "stop-local: stopped$(printf ' %s' "${ENTRIES[@]%% *}")"
fi
