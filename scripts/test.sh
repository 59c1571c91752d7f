#!/usr/bin/env bash
# The project's test command: installs what the tests need and is missing (ONNX Runtime and
# the hand landmark model through setup.sh; headless Chromium for the report's browser test;
# a running local PostgreSQL), checks the tree (no module circles, no large tracked files),
# then runs every test of the workspace (unit, integration, end-to-end).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/test-services.sh"
cd "$root"
python3 scripts/check-module-cycles.py
scripts/check-large-files.sh
cargo test --workspace --locked "$@"
