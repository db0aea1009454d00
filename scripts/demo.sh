#!/usr/bin/env bash
# Install the project into .venv, then run the end-to-end demo on generated example data.
# Extra arguments go to examples/demo.py (e.g. `bash scripts/demo.sh --workdir /tmp/demo`).
source "$(dirname "$0")/_env.sh"
exec python examples/demo.py "$@"
