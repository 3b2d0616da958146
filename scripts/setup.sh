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
if [ "$(.venv/bin/cargo-lambda lambda --version 2>/dev/null | awk '{print $2}')" != "1.9.2" ]; then
  echo "setup: installing cargo-lambda==1.9.2"
  .venv/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'
fi
# Offline checks of infra/template.yaml (scripts/test.sh): cfn-lint, SAM CLI, pytest.
INFRA_SPECS=('cfn-lint==1.58.0' 'aws-sam-cli==1.170.0' 'pytest==9.2.0')
if ! .venv/bin/python - "${INFRA_SPECS[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != pinned for name, pinned in (s.split("==") for s in sys.argv[1:])))
PY
then
  echo "setup: installing ${INFRA_SPECS[*]}"
  .venv/bin/pip install --quiet --disable-pip-version-check "${INFRA_SPECS[@]}"
fi
# Schemathesis, run against the local stack by scripts/schemathesis.sh.
SCHEMATHESIS_SPEC='schemathesis==4.32.5'
if [ "$(.venv/bin/python -c 'from importlib.metadata import version; print(version("schemathesis"))' 2>/dev/null)" != "${SCHEMATHESIS_SPEC#*==}" ]; then
  echo "setup: installing $SCHEMATHESIS_SPEC"
  .venv/bin/pip install --quiet --disable-pip-version-check "$SCHEMATHESIS_SPEC"
fi
