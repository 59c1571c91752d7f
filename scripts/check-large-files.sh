#!/usr/bin/env bash
# Fails when a tracked file over 1 MiB stands outside test fixtures: generated output
# (profiles, runs, models, caches) belongs in .gitignore, not in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
big=$(git ls-files -z | while IFS= read -r -d '' f; do
  case "$f" in */fixtures/*) continue ;; esac
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt "$limit" ] && echo "$f"
done || true)
if [ -n "$big" ]; then
  echo "check-large-files: tracked files over 1 MiB outside test fixtures:" >&2
  echo "$big" | sed 's/^/  /' >&2
  exit 1
fi
echo "check-large-files: no tracked file over 1 MiB outside test fixtures"
