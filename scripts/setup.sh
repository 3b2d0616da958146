#!/usr/bin/env bash
# Installs what the tests and the local stack need into ./.venv (idempotent:
# a second run reuses what is there). Needs python3 and cargo on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_SPEC='moto[server]==5.2.5'

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import moto, flask' 2>/dev/null || [ "$(.venv/bin/python -c 'import moto; print(moto.__version__)')" != "5.2.5" ]; then
  echo "setup: installing $MOTO_SPEC"
  .venv/bin/pip install --quiet --disable-pip-version-check "$MOTO_SPEC"
fi
