#!/usr/bin/env bash
# Checks the operators' path without a Docker engine: builds the release binaries as the
# CPU image's build stage does, bootstraps a minimal Debian bookworm root with debootstrap
# (Debian's package), and replays docker/Dockerfile's runtime stage in it: its RUN lines
# (so exactly its apt packages), its COPY --from=build lines (from this tree), its ENV and
# USER. Then starts the ENTRYPOINT there with the image's environment against a demo
# artefact in /models and the host's PostgreSQL (DATABASE_URL, as compose sets it) and asks
# `handmatch-eval info` inside the root. Also replays the build stage's apt line in a second
# root and runs the hand model import there (the step that needs python3-venv).
#
# Needs root (debootstrap, chroot) and Debian's package mirror. Roots are cached in the
# git-ignored .docker-check/; `--fresh` bootstraps them again. Not part of CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="$root/.docker-check"
dockerfile="$root/docker/Dockerfile"
db=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
port=${HANDMATCH_DOCKER_CHECK_PORT:-50061}
[ "${1:-}" = "--fresh" ] && rm -rf "$work"
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
mkdir -p "$work"

# The stages of the Dockerfile as shell lines: "STAGE<TAB>INSTRUCTION<TAB>ARGS".
stages=$(python3 - "$dockerfile" <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stage = -1
for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    op, _, rest = line.partition(" ")
    if op == "FROM":
        stage += 1
    args = re.sub(r"\s+", " ", rest)
    print(f"{stage}\t{op}\t{args}")
PY
)
instructions() { awk -F'\t' -v s="$1" -v op="$2" '$1 == s && $2 == op {print $3}' <<<"$stages"; }
last=$(awk -F'\t' '{print $1}' <<<"$stages" | tail -n1)

bootstrap() { # DIR: a bookworm minbase root, cached
  [ -x "$1/bin/sh" ] && return
  echo "== debootstrap bookworm (minbase) into $1"
  debootstrap --variant=minbase bookworm "$1" http://deb.debian.org/debian >"$1.log" 2>&1 \
    || { tail -20 "$1.log"; exit 1; }
  cp /etc/resolv.conf "$1/etc/resolv.conf"
}
mounted=()
mount_system() { # DIR
  for m in proc dev sys; do
    mountpoint -q "$1/$m" || { mount --rbind "/$m" "$1/$m"; mounted+=("$1/$m"); }
  done
}
cleanup() {
  [ -n "${server_pid:-}" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  for m in "${mounted[@]}"; do umount -R "$m" 2>/dev/null || umount -lR "$m" || true; done
}
trap cleanup EXIT

echo "== build stage: release binaries (as \`$(instructions 0 RUN | tail -n1)\`)"
scripts/setup.sh
cargo build --release --locked --quiet -p handmatch-server -p handmatch-eval -p handmatch-trainer

echo "== build stage: its apt packages, then the hand model import, in a bookworm root"
build_root="$work/build-root"
bootstrap "$build_root"
mount_system "$build_root"
if [ ! -f "$build_root/.stage-done" ]; then
  while IFS= read -r cmd; do
    case "$cmd" in *apt-get*) chroot "$build_root" sh -c "export DEBIAN_FRONTEND=noninteractive; $cmd" ;; esac
  done < <(instructions 0 RUN)
  touch "$build_root/.stage-done"
fi
rm -rf "$build_root/src" && mkdir -p "$build_root/src"
git ls-files -z | xargs -0 cp --parents -t "$build_root/src"
# The host's trust store goes along: this machine may reach PyPI through a proxy with its
# own CA, which a real image build does not need.
cp /etc/ssl/certs/ca-certificates.crt "$build_root/etc/ssl/certs/ca-certificates.crt"
chroot "$build_root" sh -c 'cd /src && bash scripts/hand-landmarks/import.sh' \
  || { echo "check-docker-runtime: the build stage's hand model import failed" >&2; exit 1; }

echo "== runtime stage: its RUN lines in a fresh bookworm root"
rt="$work/runtime-root"
bootstrap "$rt"
mount_system "$rt"
if [ ! -f "$rt/.stage-done" ]; then
  while IFS= read -r cmd; do
    echo "   RUN $cmd"
    chroot "$rt" sh -c "export DEBIAN_FRONTEND=noninteractive; $cmd"
  done < <(instructions "$last" RUN)
  touch "$rt/.stage-done"
fi
echo "== runtime stage: COPY --from=build (from this tree)"
while IFS= read -r args; do
  read -ra parts <<<"$args"
  [ "${parts[0]}" = "--from=build" ] || { echo "unsupported COPY: $args" >&2; exit 1; }
  dest="${parts[-1]}"
  for src in "${parts[@]:1:${#parts[@]}-2}"; do
    host="$root/${src#/src/}"
    echo "   $src -> $dest"
    mkdir -p "$rt$dest"
    cp -rL "${host%/}" "$rt$dest"
  done
done < <(instructions "$last" COPY)

echo "== a demo artefact in /models (random dinov2-tiny, 56 px)"
demo="$work/demo"
[ -f "$demo/ckpt/model.safetensors" ] || target/release/handmatch-train init-random --arch dinov2-tiny --seed 0 --out "$demo/ckpt"
[ -f "$demo/model.onnx" ] || target/release/handmatch-train export --hf-dir "$demo/ckpt" --image-size 56 --random-head --embedding-dim 64 --out "$demo/model.onnx"
# Mounted read-only in compose: the file keeps the mode the exporter gave it.
mkdir -p "$rt/models" && rm -f "$rt/models/model.onnx" && cp --preserve=mode "$demo/model.onnx" "$rt/models/model.onnx"

env_args=()
while IFS= read -r args; do
  for kv in $args; do env_args+=("$kv"); done
done < <(instructions "$last" ENV)
env_args+=("HANDMATCH_DATABASE_URL=$db" "HANDMATCH_LISTEN=0.0.0.0:$port")
user=$(instructions "$last" USER | tail -n1)
entry=$(instructions "$last" ENTRYPOINT | tail -n1 | python3 -c 'import json,sys; print(" ".join(json.loads(sys.stdin.read())))')
echo "== starting \`$entry\` as $user with: ${env_args[*]}"
chroot --userspec="$user:$user" "$rt" env -i PATH=/usr/local/bin:/usr/bin:/bin "${env_args[@]}" $entry \
  >"$work/server.log" 2>&1 &
server_pid=$!
# The image's documented first step: a key made with the entrypoint's `keys create`.
key=$(chroot --userspec="$user:$user" "$rt" env -i PATH=/usr/local/bin:/usr/bin:/bin "${env_args[@]}" \
  $entry keys create --name "docker-check-$$-$RANDOM" --scopes read --all-galleries)
if ! chroot "$rt" env -i PATH=/usr/local/bin:/usr/bin:/bin HANDMATCH_API_KEY="$key" \
    handmatch-eval info --server "http://127.0.0.1:$port" --wait 60s; then
  echo "check-docker-runtime: the server in the runtime root did not answer; its log:" >&2
  tail -30 "$work/server.log" >&2
  exit 1
fi
echo "check-docker-runtime: OK (the runtime stage's root serves; log in $work/server.log)"
