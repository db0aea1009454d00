#!/usr/bin/env bash
# Install the project with its test extra into .venv, then run the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k codec`).
source "$(dirname "$0")/_env.sh"
exec python -m pytest "$@"
