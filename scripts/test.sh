#!/usr/bin/env bash
# The test command (README, CI): set up, then run the suite without the `slow` cases.
# Run everything with: bash scripts/test.sh -m ""
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest -m "not slow" "$@"
