#!/usr/bin/env bash
# A million-subject gallery on the local PostgreSQL, then what a replica pays for it:
# `handmatch-gallery make` writes SUBJECTS deterministic random subjects (seed 7, one
# L2-normalised palmar template each, DIM values) with COPY into the database
# hm_large_<SUBJECTS>_<DIM> (made once, reused after), and `handmatch-gallery measure`
# loads them through the server's start-up path and prints load time, resident memory and
# the search latency of top-10 queries.
#
#   scripts/make-large-gallery.sh                  # 1,000,000 × 256 (about 1.3 GB in Postgres)
#   LARGE_SUBJECTS=100000 scripts/make-large-gallery.sh
#
# Bounded: at most 10,000,000 subjects (the tool refuses more).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
subjects=${LARGE_SUBJECTS:-1000000}
dim=${LARGE_DIM:-256}
model_id=${LARGE_MODEL_ID:-large-gallery-random}
admin=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
"$root/scripts/test-services.sh"
cd "$root"
cargo build --release --locked --quiet -p handmatch-server --bin handmatch-gallery
G=target/release/handmatch-gallery
db="hm_large_${subjects}_${dim}"
url="${admin%/*}/$db"
if ! psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  psql "$admin" -qc "CREATE DATABASE $db"
  # A partial gallery is not reused: a failed make drops its database.
  $G make --database-url "$url" --model-id "$model_id" --dim "$dim" --subjects "$subjects" \
    || { psql "$admin" -qc "DROP DATABASE $db"; exit 1; }
fi
psql "$url" -tAc "SELECT 'database size: ' || pg_size_pretty(pg_database_size('$db'))"
$G measure --database-url "$url" --model-id "$model_id" --dim "$dim"
