#!/usr/bin/env bash
# Quick start: set up, build, make a demo model (a random DINOv2-small checkpoint with a
# random head: no pretrained weights can be downloaded here) and a synthetic gallery, start
# the server on the embedded SQLite store, enrol the palm images, identify one back-of-hand
# image and print the ranked answer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
echo "== building (release)"
cargo build --release --quiet -p handmatch -p handmatch-trainer
T=target/release/handmatch-train
E=target/release/handmatch-eval
demo="$root/models/demo"
mkdir -p "$demo"
[ -f "$demo/ckpt/model.safetensors" ] || $T init-random --arch dinov2-small --seed 0 --out "$demo/ckpt"
[ -f "$demo/model.onnx" ] || $T export --hf-dir "$demo/ckpt" --image-size 224 --random-head --embedding-dim 256 --out "$demo/model.onnx"
[ -f "$demo/hands/HandInfo.csv" ] || $T synth --subjects 20 --seed 1 --out "$demo/hands"
rm -f "$demo"/gallery.db*
port=${HANDMATCH_DEMO_PORT:-50151}
server="http://127.0.0.1:$port"
echo "== starting handmatch-server on 127.0.0.1:$port"
target/release/handmatch-server --model "$demo/model.onnx" --database-url "sqlite://$demo/gallery.db" \
  --listen "127.0.0.1:$port" > "$demo/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
$E info --server "$server" --wait 120s
echo "== enrolling the palm images"
$E enroll --server "$server" --data "$demo/hands"
# The first dorsal (back of the hand) image in the dataset, and whose it is.
row=$(grep -m1 '"dorsal' "$demo/hands/HandInfo.csv" | tr -d '"\r')
subject=$(echo "$row" | cut -d, -f1)
image=$(echo "$row" | cut -d, -f8)
echo "== identifying $image (back of the hand of subject $subject)"
$E identify --server "$server" --image "$demo/hands/Hands/$image" --top-k 5
echo "(the demo model is random: until a head is trained, ranks are not meaningful)"
