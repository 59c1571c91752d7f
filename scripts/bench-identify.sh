#!/usr/bin/env bash
# Identify latency and throughput at concurrency 1 and 8, measured through gRPC with
# handmatch-eval load against a release server on loopback. Default model: a random
# dinov2-base artefact (built by scripts/bench-embed.sh's steps if missing).
# Usage: scripts/bench-identify.sh [MODEL] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
cargo build --release --quiet -p handmatch-server -p handmatch-eval -p handmatch-trainer
T=target/release/handmatch-train
E=target/release/handmatch-eval
work="$root/models/bench-dinov2-base"
model=${1:-$work/model.onnx}
seconds=${2:-30}
if [ ! -f "$model" ]; then
  [ -f "$work/ckpt/model.safetensors" ] || $T init-random --arch dinov2-base --seed 0 --out "$work/ckpt"
  $T export --hf-dir "$work/ckpt" --image-size 224 --random-head --out "$model"
fi
data="$root/models/bench-hands"
[ -f "$data/HandInfo.csv" ] || $T synth --subjects 50 --seed 3 --per-view-min 1 --per-view-max 1 --out "$data"
db=$(mktemp -d)/bench.db
port=${HANDMATCH_BENCH_PORT:-50161}
HANDMATCH_API_KEY=$(target/release/handmatch-server keys create --database-url "sqlite://$db" \
  --name bench --scopes enroll,identify,read --gallery default)
export HANDMATCH_API_KEY
target/release/handmatch-server --model "$model" --database-url "sqlite://$db" --listen "127.0.0.1:$port" \
  --max-queue 256 > "$db.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
$E info --server "127.0.0.1:$port" --wait 300s
$E enroll --server "127.0.0.1:$port" --data "$data"
for c in 1 8; do
  echo "== Identify, one image per request, concurrency $c, ${seconds}s"
  $E load --server "127.0.0.1:$port" --data "$data" --concurrency "$c" --duration "${seconds}s" \
    --mix identify=1 --out "$root/models/bench-identify-c$c.json"
done
