#!/usr/bin/env bash
# Soak: a release server on PostgreSQL under mixed load (identify 8 : enroll 1 : delete 1)
# at concurrency 64 from `handmatch-eval load` for 10 minutes, loopback only, with the
# server's resident memory and open file descriptors sampled every 10 s into a CSV and two
# plots. Prints the load report (p50/p95/p99 and status codes per RPC) and RSS at the start,
# after warm-up and at the end.
#
#   scripts/soak.sh                          # 10 minutes, results in runs/soak
#   SOAK_DURATION=2m SOAK_OUT=/tmp/soak scripts/soak.sh
#
# The model is the hand landmark backbone with a random head (the product's per-image cost;
# its ranks mean nothing), the data 40 synthetic subjects, the database a fresh one on the
# local PostgreSQL (DATABASE_URL's server, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${SOAK_DURATION:-10m}
concurrency=${SOAK_CONCURRENCY:-64}
out=${SOAK_OUT:-$root/runs/soak}
port=${SOAK_PORT:-50171}
admin=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
"$root/scripts/setup.sh"
"$root/scripts/test-services.sh"
cd "$root"
echo "== building (release)"
cargo build --release --locked --quiet -p handmatch-server -p handmatch-eval -p handmatch-trainer
T=target/release/handmatch-train
E=target/release/handmatch-eval
mkdir -p "$out"
[ -f "$out/hands/HandInfo.csv" ] || $T synth --subjects 40 --seed 3 --out "$out/hands"
[ -f "$out/model.onnx" ] || $T export --backbone hand-landmarks --image-size 224 \
  --random-head --embedding-dim 128 --out "$out/model.onnx"

db="hm_soak_$$"
psql "$admin" -qc "CREATE DATABASE $db"
url="${admin%/*}/$db"
HANDMATCH_API_KEY=$(target/release/handmatch-server keys create --database-url "$url" \
  --name soak --scopes enroll,identify,delete,read --gallery default)
export HANDMATCH_API_KEY
echo "== starting handmatch-server on 127.0.0.1:$port (database $db)"
target/release/handmatch-server --model "$out/model.onnx" --database-url "$url" \
  --listen "127.0.0.1:$port" > "$out/server.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db" || true
}
trap cleanup EXIT
server="http://127.0.0.1:$port"
$E info --server "$server" --wait 120s > /dev/null
echo "== $duration of load at concurrency $concurrency"
$E load --server "$server" --data "$out/hands" --concurrency "$concurrency" \
  --duration "$duration" --mix identify=8,enroll=1,delete=1 --out "$out/load.json" \
  --sample-pid "$pid" --samples "$out/server" --sample-every 10s | tee "$out/load.md"
python3 - "$out/server.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rss = [float(r["rss_mib"]) for r in rows]
fds = [int(r["open_fds"]) for r in rows]
warm = min(len(rss) - 1, max(1, len(rss) // 10))  # the first tenth is warm-up
growth = (rss[-1] - rss[warm]) / rss[warm] * 100
print(f"RSS start {rss[0]:.0f} MiB, after warm-up {rss[warm]:.0f} MiB "
      f"(t={rows[warm]['t_s']} s), end {rss[-1]:.0f} MiB ({growth:+.1f} % after warm-up), "
      f"max {max(rss):.0f} MiB; open fds {fds[0]} .. {max(fds)} (end {fds[-1]}); "
      f"{len(rows)} samples")
PY
echo "(samples: $out/server.csv, $out/server-rss.png, $out/server-fds.png)"
