# Sourced by scripts/test.sh and scripts/demo.sh: create .venv and install the project into it.
# torch is pinned through constraints/cpu.txt so pip takes the CPU wheel, never a multi-GB CUDA build.
# The default extra `test` brings every extra (`all`); the bare base install is only what the preflight needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON_BIN=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON_BIN" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints/cpu.txt -e ".[${FASTTOK_EXTRAS:-test}]"
export PATH="$PWD/.venv/bin:$PATH"
