#!/usr/bin/env bash
# Exact search speed against FAISS, on this machine, in one run:
# `handmatch-bench search` (f32 and f16 rows) and FAISS IndexFlatIP (faiss-cpu from PyPI, in
# the git-ignored .venv-bench) on the same kind of data: N random L2-normalised rows of D
# values, Q queries one at a time and in batches of B, on T threads. Prints a Markdown
# table with the ratios to FAISS.
#
#   scripts/bench-search.sh                      # 1,000,000 x 256, 200 queries, batch 64, 1 thread
#   GALLERY=100000 THREADS=2 scripts/bench-search.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${GALLERY:-1000000} d=${DIM:-256} q=${QUERIES:-200} b=${BATCH:-64} t=${THREADS:-1}
venv="$root/.venv-bench"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faiss" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet faiss-cpu numpy
fi
cargo build --release --locked --quiet -p handmatch-server --bin handmatch-bench
flags=(--gallery "$n" --dim "$d" --queries "$q" --batch "$b" --threads "$t")
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for precision in f32 f16; do
  target/release/handmatch-bench search "${flags[@]}" --precision "$precision" | tee /dev/stderr | grep '^result' >> "$results"
done
"$venv/bin/python" scripts/bench-search-faiss.py "${flags[@]}" | tee /dev/stderr | grep '^result' >> "$results"
python3 - "$results" "$n" "$d" "$q" "$b" "$t" <<'PY'
import sys
path, n, d, q, b, t = sys.argv[1:]
rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(path)]
faiss = next(r for r in rows if r["engine"] == "faiss")
print(f"\n{int(n):,} x {d}, {q} queries, batch {b}, {t} thread(s)\n")
print("| engine | single queries/s | vs FAISS | batched queries/s | vs FAISS | top-10 recall vs f32 |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    s, bq = float(r["single_qps"]), float(r["batch_qps"])
    print(f"| {r['engine']} | {s:.1f} | {s / float(faiss['single_qps']):.2f}x | {bq:.1f} | "
          f"{bq / float(faiss['batch_qps']):.2f}x | {r.get('recall', '-')} |")
PY
