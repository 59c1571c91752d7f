#!/usr/bin/env bash
# Embedding throughput of a random DINOv2 artefact (default: the dinov2-base configuration)
# at batch 1 and 8: exports it from a random checkpoint (in fp32, int8 or fp16), then runs
# handmatch-bench.
# Usage: scripts/bench-embed.sh [ARCH] [IMAGE_SIZE] [SECONDS] [fp32|int8|fp16]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-dinov2-base}
size=${2:-224}
seconds=${3:-20}
precision=${4:-fp32}
"$root/scripts/setup.sh"
cd "$root"
cargo build --release --quiet -p handmatch-trainer -p handmatch-server
work="$root/models/bench-$arch"
[ -f "$work/ckpt/model.safetensors" ] || target/release/handmatch-train init-random --arch "$arch" --seed 0 --out "$work/ckpt"
start=$(date +%s.%N)
model="$work/model.onnx"
reduced=()
if [ "$precision" != fp32 ]; then
  model="$work/model-$precision.onnx"
  reduced=(--precision "$precision")
fi
target/release/handmatch-train export --hf-dir "$work/ckpt" --image-size "$size" --random-head \
  "${reduced[@]}" --out "$model"
echo "export took $(echo "$(date +%s.%N) - $start" | bc) s"
target/release/handmatch-bench embed --model "$model" --batch-sizes 1,8 --seconds "$seconds"
