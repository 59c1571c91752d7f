#!/usr/bin/env bash
# Identify throughput and latency of handmatch (fp32 and int8 DINOv2-B/14 artefacts, each in
# its default embedding layout and in the other one) against the reference study's stack served
# the obvious way (scripts/reference/serve.py: grpcio,
# PIL, the study's transform, PyTorch eager ViT-B/14, numpy top-k), all with random weights
# (the real FLOPs), one after the other in one run, driven by the same load generator
# (handmatch-eval load, one 1600 x 1200 JPEG per Identify) at concurrency 1 and 8.
# Writes runs/bench-vs-reference/table.md (the ratios) and the load reports beside it.
# Development only: installs torch, transformers and grpcio into the git-ignored .venv-ref.
# Usage: scripts/bench-vs-reference.sh [SECONDS per measurement, default 30] [ROUNDS, default 1]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
rounds=${2:-1}
"$root/scripts/setup.sh"
cd "$root"
venv="$root/.venv-ref"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install -q -r scripts/reference/requirements.txt -r scripts/reference/serve-requirements.txt
cargo build --release --quiet -p handmatch-server -p handmatch-eval -p handmatch-trainer
T=target/release/handmatch-train
E=target/release/handmatch-eval
S=target/release/handmatch-server
out="$root/runs/bench-vs-reference"
models="$root/models/bench-dinov2-base"
mkdir -p "$out" "$models"

gen="$out/gen"
mkdir -p "$gen"
"$venv/bin/python" -m grpc_tools.protoc -I crates/handmatch-proto/proto \
  --python_out="$gen" --grpc_python_out="$gen" handmatch/v1/handmatch.proto

[ -f "$models/ckpt/model.safetensors" ] || $T init-random --arch dinov2-base --seed 0 --out "$models/ckpt"
[ -f "$models/model.onnx" ] || $T export --hf-dir "$models/ckpt" --image-size 224 --random-head --out "$models/model.onnx"
[ -f "$models/model-int8.onnx" ] || $T export --hf-dir "$models/ckpt" --image-size 224 --random-head \
  --quantize int8 --out "$models/model-int8.onnx"
data="$models/hands-1600"
[ -f "$data/HandInfo.csv" ] || $T synth --subjects 20 --seed 3 --width 1600 --height 1200 \
  --per-view-min 1 --per-view-max 1 --out "$data"

port=${HANDMATCH_BENCH_PORT:-50171}
pid=
stop() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop EXIT

measure() { # stack round
  for c in 1 8; do
    echo "== $1 (round $2): Identify, concurrency $c, ${seconds}s"
    $E load --server "127.0.0.1:$port" --data "$data" --concurrency "$c" --duration "${seconds}s" \
      --mix identify=1 --out "$out/$1-r$2-c$c.json"
  done
}

for round in $(seq 1 "$rounds"); do
  "$venv/bin/python" scripts/reference/serve.py --port "$port" --gen "$gen" --threads "$(nproc)" \
    > "$out/reference.log" 2>&1 &
  pid=$!
  $E info --server "127.0.0.1:$port" --wait 300s > /dev/null
  measure reference "$round"
  stop
  # The default layouts (fp32: one session; int8: a pool of one session per core plus one
  # for a request running alone), then each artefact in the other layout.
  for stack in fp32 int8 fp32-pool int8-one-session; do
    model="$models/model.onnx"
    case "$stack" in int8*) model="$models/model-int8.onnx" ;; esac
    workers=0
    case "$stack" in *-one-session) workers=1 ;; *-pool) workers=$(nproc) ;; esac
    db=$(mktemp -d)/bench.db
    HANDMATCH_API_KEY=$($S keys create --database-url "sqlite://$db" --name bench \
      --scopes enroll,identify,read --gallery default)
    export HANDMATCH_API_KEY
    $S --model "$model" --database-url "sqlite://$db" --listen "127.0.0.1:$port" --max-queue 256 \
      --embed-workers "$workers" > "$out/handmatch-$stack.log" 2>&1 &
    pid=$!
    $E info --server "127.0.0.1:$port" --wait 300s > /dev/null
    $E enroll --server "127.0.0.1:$port" --data "$data" > /dev/null
    measure "handmatch-$stack" "$round"
    stop
    unset HANDMATCH_API_KEY
  done
done

"$venv/bin/python" - "$out" "$rounds" "$seconds" <<'PY' | tee "$out/table.md"
import json, sys, datetime, platform
out, rounds, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(stack, c):
    rs = [json.load(open(f"{out}/{stack}-r{r}-c{c}.json")) for r in range(1, rounds + 1)]
    ident = [r["rpcs"]["identify"] for r in rs]
    ok = sum(i["codes"].get("Ok", 0) for i in ident)
    return (sum(i["per_second"] for i in ident) / len(ident),
            sum(i["p50_ms"] for i in ident) / len(ident), ok, sum(i["requests"] for i in ident))
stacks = [("reference", "reference stack (grpcio + PIL + PyTorch eager + numpy)"),
          ("handmatch-fp32", "handmatch, fp32 artefact"), ("handmatch-int8", "handmatch, int8 artefact"),
          ("handmatch-fp32-pool", "handmatch, fp32, pool (--embed-workers = cores)"),
          ("handmatch-int8-one-session", "handmatch, int8, one session (--embed-workers 1)")]
res = {s: {c: load(s, c) for c in (1, 8)} for s, _ in stacks}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Run of {datetime.date.today()} on {cpu} ({platform.machine()}), {rounds} round(s) of {seconds} s "
      "per cell, one 1600 x 1200 JPEG per Identify, DINOv2-B/14 at 224 with random weights.\n")
print("| stack | c1 req/s | c1 p50 ms | c8 req/s | c8 p50 ms | c8 vs reference | c8 vs handmatch fp32 | OK / requests |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for s, label in stacks:
    r1, r8 = res[s][1], res[s][8]
    vs_ref = r8[0] / res["reference"][8][0]
    vs_fp32 = r8[0] / res["handmatch-fp32"][8][0]
    print(f"| {label} | {r1[0]:.2f} | {r1[1]:.0f} | {r8[0]:.2f} | {r8[1]:.0f} | {vs_ref:.2f}x | {vs_fp32:.2f}x | "
          f"{r1[2] + r8[2]} / {r1[3] + r8[3]} |")
PY
