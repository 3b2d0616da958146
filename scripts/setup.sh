#!/usr/bin/env bash
# Installs into ./.venv what a command needs, and only that (idempotent: a
# second run checks the pinned versions and installs nothing):
#
#   scripts/setup.sh fast    moto's server (DynamoDB + KMS emulator): what
#                            `cargo test` needs (scripts/test.sh --fast)
#   scripts/setup.sh local   fast + cargo-lambda: the local stack
#                            (scripts/run-local.sh)
#   scripts/setup.sh test    local + cfn-lint, SAM CLI, pytest, schemathesis
#                            and checkov: the full test suite (scripts/test.sh);
#                            also the default, with no argument
#
# Needs python3 (3.11+, with venv) and cargo on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

PART=${1:-test}
case "$PART" in
  fast | local | test) ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup: unknown part $PART (fast, local or test; see --help)" >&2; exit 2 ;;
esac

pip_install() {
  .venv/bin/pip install --quiet --disable-pip-version-check "$@"
}

# ----- fast: moto ------------------------------------------------------------
MOTO_SPEC='moto[server]==5.2.5'
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import moto, flask' 2>/dev/null || [ "$(.venv/bin/python -c 'import moto; print(moto.__version__)')" != "5.2.5" ]; then
  echo "setup: installing $MOTO_SPEC"
  pip_install "$MOTO_SPEC"
fi
[ "$PART" = fast ] && exit 0

# ----- local: cargo-lambda ---------------------------------------------------
if [ "$(.venv/bin/cargo-lambda lambda --version 2>/dev/null | awk '{print $2}')" != "1.9.2" ]; then
  echo "setup: installing cargo-lambda==1.9.2"
  pip_install 'cargo-lambda==1.9.2'
fi
[ "$PART" = local ] && exit 0

# ----- test: the full suite's tools ------------------------------------------
# Offline checks of infra/template.yaml (scripts/test.sh): cfn-lint, SAM CLI, pytest.
INFRA_SPECS=('cfn-lint==1.58.0' 'aws-sam-cli==1.170.0' 'pytest==9.2.0')
if ! .venv/bin/python - "${INFRA_SPECS[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != pinned for name, pinned in (s.split("==") for s in sys.argv[1:])))
PY
then
  echo "setup: installing ${INFRA_SPECS[*]}"
  pip_install "${INFRA_SPECS[@]}"
fi
# checkov, run offline on infra/template.yaml by scripts/test.sh (.checkov.yaml).
# Its own venv inside .venv: checkov pins boto3 1.35, aws-sam-cli pins 1.43.
CHECKOV_SPEC='checkov==3.3.30'
if [ "$(.venv/checkov/bin/checkov --version 2>/dev/null)" != "${CHECKOV_SPEC#*==}" ]; then
  echo "setup: installing $CHECKOV_SPEC (into .venv/checkov)"
  [ -x .venv/checkov/bin/python ] || python3 -m venv .venv/checkov
  .venv/checkov/bin/pip install --quiet --disable-pip-version-check "$CHECKOV_SPEC"
fi
# Schemathesis, run against the local stack by scripts/schemathesis.sh.
SCHEMATHESIS_SPEC='schemathesis==4.32.5'
if [ "$(.venv/bin/python -c 'from importlib.metadata import version; print(version("schemathesis"))' 2>/dev/null)" != "${SCHEMATHESIS_SPEC#*==}" ]; then
  echo "setup: installing $SCHEMATHESIS_SPEC"
  pip_install "$SCHEMATHESIS_SPEC"
fi
