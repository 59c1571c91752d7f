#!/usr/bin/env bash
# Regenerates the exporter's parity fixtures with the pinned Hugging Face reference.
# Development only: installs torch + transformers from PyPI into a git-ignored venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv-ref"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/scripts/reference/requirements.txt"
fi
cd "$root"
"$venv/bin/python" scripts/reference/make_parity_fixtures.py crates/handmatch-export/tests/fixtures/parity
