#!/usr/bin/env bash
# Installs what the project needs that cargo does not fetch: Debian's libturbojpeg0-dev
# (linked at build time), ONNX Runtime's
# shared library, taken from the onnxruntime wheel on PyPI, into the git-ignored .ort/lib;
# then MediaPipe's hand landmark model, converted to ONNX into the git-ignored
# models/hand-landmarks/ (scripts/hand-landmarks/import.sh). Idempotent: each step does
# nothing when its result is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=1.32.0
lib="$root/.ort/lib/libonnxruntime.so"
install_ort() {
python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || { echo "setup: python3 with pip is needed to fetch the onnxruntime wheel" >&2; exit 1; }
local tmp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' RETURN
echo "setup: fetching onnxruntime==$version from PyPI" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --python-version 3.11 --implementation cp -d "$tmp" "onnxruntime==$version"
wheel=$(ls "$tmp"/onnxruntime-*.whl)
mkdir -p "$root/.ort/lib"
"$python" - "$wheel" "$root/.ort/lib" "$version" <<'PY'
import sys, zipfile, os
wheel, dest, version = sys.argv[1:]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    data = z.read(name)
tmp = os.path.join(dest, f".libonnxruntime.so.{version}.partial")
with open(tmp, "wb") as f:
    f.write(data)
os.replace(tmp, os.path.join(dest, f"libonnxruntime.so.{version}"))
PY
ln -sfn "libonnxruntime.so.$version" "$lib"
echo "setup: installed $lib -> libonnxruntime.so.$version" >&2
}

# libjpeg-turbo's TurboJPEG API (DCT-scaled JPEG decoding) is linked at build time through
# pkg-config: Debian's libturbojpeg0-dev.
install_turbojpeg() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing libturbojpeg0-dev with apt" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libturbojpeg0-dev >/dev/null
}

if ! pkg-config --exists libturbojpeg 2>/dev/null; then
  install_turbojpeg
fi
if [ ! -f "$lib.$version" ] || [ ! -L "$lib" ]; then
  install_ort
fi
"$root/scripts/hand-landmarks/import.sh"
