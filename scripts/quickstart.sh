#!/usr/bin/env bash
# Quick start: set up, build, write a demo artefact from a random DINOv2 checkpoint, and
# measure how fast this machine embeds with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
cargo build --release --quiet -p handmatch-trainer -p handmatch
demo="$root/models/demo"
[ -f "$demo/ckpt/model.safetensors" ] || target/release/handmatch-train init-random --arch dinov2-small --seed 0 --out "$demo/ckpt"
target/release/handmatch-train export --hf-dir "$demo/ckpt" --image-size 224 --random-head --embedding-dim 256 --out "$demo/model.onnx"
target/release/handmatch-bench --model "$demo/model.onnx" --batch-sizes 1,8 --seconds 5
