#!/usr/bin/env bash
# Embedding throughput of a random DINOv2 artefact (default: the dinov2-base configuration)
# at batch 1 and 8: exports it from a random checkpoint, then runs handmatch-bench.
# Usage: scripts/bench-embed.sh [ARCH] [IMAGE_SIZE] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-dinov2-base}
size=${2:-224}
seconds=${3:-20}
"$root/scripts/setup.sh"
cd "$root"
cargo build --release --quiet -p handmatch-trainer -p handmatch-server
work="$root/models/bench-$arch"
[ -f "$work/ckpt/model.safetensors" ] || target/release/handmatch-train init-random --arch "$arch" --seed 0 --out "$work/ckpt"
start=$(date +%s.%N)
target/release/handmatch-train export --hf-dir "$work/ckpt" --image-size "$size" --random-head --out "$work/model.onnx"
echo "export took $(echo "$(date +%s.%N) - $start" | bc) s"
target/release/handmatch-bench embed --model "$work/model.onnx" --batch-sizes 1,8 --seconds "$seconds"
