#!/usr/bin/env bash
# Imports MediaPipe's hand landmark model (hand_landmark_full.tflite from the mediapipe
# 0.10.14 wheel on PyPI) as models/hand-landmarks/hand_landmark_full.onnx, checked
# against reference.json. Idempotent: exits at once when the model and its .sha256
# sidecar agree.
#
#   scripts/hand-landmarks/import.sh            import (venv: $HANDMATCH_HAND_VENV,
#                                               default .venv-hand)
#   scripts/hand-landmarks/import.sh --record   re-record reference.json from the TFLite
#                                               interpreter, in a separate temp venv
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out_dir="$root/models/hand-landmarks"
model="$out_dir/hand_landmark_full.onnx"
mediapipe_version=0.10.14
member=mediapipe/modules/hand_landmark/hand_landmark_full.tflite
tflite_sha256=11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3
# Only --record needs an interpreter for the original model; kept out of the normal venv.
record_pins="ai-edge-litert==2.3.0 backports.strenum==1.2.8 tqdm==4.70.1"

record=0
case "${1:-}" in
  "") ;;
  --record) record=1 ;;
  *) echo "usage: $0 [--record]" >&2; exit 2 ;;
esac

if [ "$record" = 0 ] && [ -f "$model" ] && [ -f "$model.sha256" ] &&
   (cd "$out_dir" && sha256sum --quiet -c "$(basename "$model").sha256" >/dev/null 2>&1); then
  exit 0
fi

start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python=$(command -v python3.11 || command -v python3 || true)
[ -n "$python" ] || { echo "import: python3 (3.11) is needed" >&2; exit 1; }
if [ "$record" = 1 ]; then
  venv="$tmp/venv"
else
  venv="${HANDMATCH_HAND_VENV:-$root/.venv-hand}"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "import: creating venv $venv" >&2
  "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
# Re-running install on an existing venv is a quick no-op when the pins are met.
"$vpy" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
if [ "$record" = 1 ]; then
  # shellcheck disable=SC2086
  "$vpy" -m pip install --quiet --disable-pip-version-check $record_pins
fi

echo "import: fetching mediapipe==$mediapipe_version wheel" >&2
# The wheel is only a container for the .tflite file: any platform's copy would do, so
# pin one to keep pip from resolving against this machine.
"$vpy" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp \
  -d "$tmp" "mediapipe==$mediapipe_version"
wheel=$(ls "$tmp"/mediapipe-"$mediapipe_version"-*.whl)
tflite="$tmp/hand_landmark_full.tflite"
"$vpy" - "$wheel" "$member" "$tflite" <<'PY'
import sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(dest, "wb") as f:
    f.write(z.read(member))
PY
got=$(sha256sum "$tflite" | cut -d' ' -f1)
if [ "$got" != "$tflite_sha256" ]; then
  echo "import: $member has sha256 $got, expected $tflite_sha256" >&2
  exit 1
fi

rm -f "$model.sha256"
args=(--tflite "$tflite" --out "$model")
[ "$record" = 1 ] && args+=(--record)
"$vpy" "$here/convert.py" "${args[@]}"

sum=$(sha256sum "$model" | cut -d' ' -f1)
dynamic=$("$vpy" -c 'import onnx, sys
d = onnx.load(sys.argv[1]).graph.input[0].type.tensor_type.shape.dim[0]
print("yes" if d.dim_param else "no")' "$model")
echo "$sum  $(basename "$model")" > "$model.sha256.partial"
mv "$model.sha256.partial" "$model.sha256"
echo "hand-landmarks: $model sha256=$sum batch_dynamic=$dynamic ($((SECONDS - start))s)"
