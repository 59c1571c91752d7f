#!/usr/bin/env bash
# What the tests need beyond cargo and setup.sh: headless Chromium (Debian's package) for
# the report's browser test, and PostgreSQL at DATABASE_URL (default 127.0.0.1:5432, user
# postgres, database test). Installs Chromium with apt when it is missing and starts the
# local PostgreSQL cluster when it is down; does nothing when both are there.
set -euo pipefail
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "test-services: installing chromium (Debian's package) for the browser test" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
if [ -z "${DATABASE_URL:-}" ] && command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "test-services: starting the local PostgreSQL cluster" >&2
  cluster=$(ls /etc/postgresql | head -n1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
