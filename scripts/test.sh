#!/usr/bin/env bash
# The project's test command: installs the run-time pieces if missing, then runs every
# test of the workspace (unit, integration, end-to-end).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
cargo test --workspace --locked "$@"
