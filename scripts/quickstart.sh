#!/usr/bin/env bash
# Quick start: set up (ONNX Runtime and the real MediaPipe hand landmark network), build,
# draw synthetic hands, fit the recipe (recipes/hand.toml) on the hand network's features
# of the training subjects (about a minute), serve it on the embedded SQLite store, enrol the palms of the
# held-out subjects, identify one back-of-hand image and print the ranked answer, then
# identify every held-out back-of-hand image and print the Recall@1 it achieved.
#
#   scripts/quickstart.sh                  # the hand model (the default)
#   scripts/quickstart.sh --random-dinov2  # a random DINOv2-small with a random head:
#                                          # the same plumbing, ranks that mean nothing
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model_kind=hand
case "${1:-}" in
  "") ;;
  --random-dinov2) model_kind=random-dinov2 ;;
  *) echo "usage: $0 [--random-dinov2]" >&2; exit 2 ;;
esac
"$root/scripts/setup.sh"
cd "$root"
echo "== building (release)"
cargo build --release --locked --quiet -p handmatch-server -p handmatch-eval -p handmatch-trainer
T=target/release/handmatch-train
E=target/release/handmatch-eval
demo="$root/models/demo"
hands="$demo/hands"
mkdir -p "$demo"
[ -f "$hands/HandInfo.csv" ] || $T synth --subjects 40 --seed 1 --out "$hands"
# Subjects, not images, are split: the held-out (test) subjects are never seen in training.
[ -f "$demo/split.json" ] || $T split --data "$hands" --train 0.5 --val 0.2 --test 0.3 --seed 0 --out "$demo/split.json"

if [ "$model_kind" = hand ]; then
  model="$demo/hand-run/model.onnx"
  if [ ! -f "$model" ]; then
    echo "== fitting the recipe's heads on the hand landmark network's features (training subjects)"
    $T fit --recipe recipes/hand.toml --data "$hands" --split "$demo/split.json" --out "$demo/hand-run"
  fi
else
  model="$demo/random-dinov2.onnx"
  [ -f "$demo/ckpt/model.safetensors" ] || $T init-random --arch dinov2-small --seed 0 --out "$demo/ckpt"
  [ -f "$model" ] || $T export --hf-dir "$demo/ckpt" --image-size 224 --random-head --embedding-dim 256 --out "$model"
fi

rm -f "$demo"/gallery.db*
port=${HANDMATCH_DEMO_PORT:-50151}
server="http://127.0.0.1:$port"
db="sqlite://$demo/gallery.db"
# Every call needs an API key: this one may enrol, search, read and delete in the default
# gallery (not manage keys). It is printed once; the database keeps only a hash.
echo "== creating an API key for the demo"
HANDMATCH_API_KEY=$(target/release/handmatch-server keys create --database-url "$db" \
  --name quickstart --scopes enroll,identify,verify,read,delete --gallery default)
export HANDMATCH_API_KEY
echo "== starting handmatch-server on 127.0.0.1:$port with $model"
target/release/handmatch-server --model "$model" --database-url "$db" \
  --listen "127.0.0.1:$port" > "$demo/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
$E info --server "$server" --wait 120s
test_subset=(--data "$hands" --split "$demo/split.json" --subset test)
echo "== enrolling the palm images of the held-out subjects"
$E enroll --server "$server" "${test_subset[@]}"

# The first back-of-hand image of a held-out subject, and whose it is.
read -r subject image < <(python3 - "$hands/HandInfo.csv" "$demo/split.json" <<'PY'
import csv, json, sys
test = set(json.load(open(sys.argv[2]))["test"])
for row in csv.DictReader(open(sys.argv[1], newline="")):
    if row["id"].strip() in test and row["aspectOfHand"].startswith("dorsal"):
        print(row["id"].strip(), row["imageName"])
        break
PY
)
echo "== identifying $image (the back of the hand of subject $subject)"
$E identify --server "$server" --image "$hands/Hands/$image" --top-k 5

echo "== identifying every back-of-hand image of the held-out subjects"
$E run --server "$server" "${test_subset[@]}" --out "$demo/eval" | tee "$demo/eval.md"
awk -F'|' '/image → template/ {
  gsub(/ /, "", $3); gsub(/ /, "", $4); gsub(/ /, "", $5)
  printf "Recall@1 over %s back-of-hand queries against %s palm templates: %s (chance %.3f)\n", $3, $4, $5, 1 / $4
}' "$demo/eval.md"
echo "(report: $demo/eval/report.html)"
[ "$model_kind" = hand ] || echo "(a random model: its ranks are not meaningful)"
