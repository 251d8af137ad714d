#!/usr/bin/env bash
# Benchmark: part-level resume. One large object from S3 into R2 (both played by the strict
# R2 test server, in memory): a fresh copy, then a run killed with kill -9 once half its parts are
# recorded, then the run that resumes it. Prints seconds, and the bytes that crossed
# loopback (read from S3 + sent to R2; /proc/net/dev). Results go in docs/benchmarks.md
# ("Part-level resume").
#
#   bash scripts/bench-resume.sh [size_mib] [part_mib]
#
# Needs: GNU time (the servers are built from this workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-2048}
PART_MIB=${2:-64}
KEY=bench-key
SECRET=bench-secret
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --quiet --workspace
BIN=$PWD/target/release/r2migrate
STRICT=$PWD/target/release/r2-strict
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
source scripts/bench-lib.sh

S3_PORT=$((20000 + RANDOM % 10000)); R2_PORT=$((S3_PORT + 1))
# Both sides are strict R2 test servers (in memory, S3's API): s3s-fs reads a whole file
# to answer each HEAD or GET with its MD5, which would time s3s-fs, not the resume.
"$STRICT" --port $S3_PORT --access-key $KEY --secret-key $SECRET --bucket legacy >/dev/null 2>&1 &
# R2 starts empty for each measurement (it holds everything in memory).
R2_PID=
fresh_r2() {
  if [ -n "$R2_PID" ]; then kill $R2_PID; wait $R2_PID 2>/dev/null || true; fi
  "$STRICT" --port $R2_PORT --access-key $KEY --secret-key $SECRET --bucket media >/dev/null 2>&1 &
  R2_PID=$!
  wait_port $R2_PORT
}
fresh_r2
wait_port $S3_PORT
# The source object, put in one PUT (so its ETag is its MD5, which every run checks).
mkdir -p "$WORK/data"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$WORK/data/big.bin"
R2_ENDPOINT_URL=http://127.0.0.1:$S3_PORT R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET \
  $BIN run --quiet --manifest "$WORK/load.jsonl" --multipart-threshold 4GiB \
  --from "$WORK/data" --to r2://legacy/ >/dev/null
rm -rf "$WORK/data"

export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export R2_ENDPOINT_URL=http://127.0.0.1:$R2_PORT R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET
FLAGS=(--part-size ${PART_MIB}MiB --multipart-threshold ${PART_MIB}MiB --quiet)
PARTS=$(( (SIZE_MIB + PART_MIB - 1) / PART_MIB ))

lo_bytes() { # bytes received on loopback so far: every byte between the three processes
  awk '$1 == "lo:" {print $2}' /proc/net/dev
}
# One run: its seconds, and the MiB that crossed loopback (what r2migrate read from S3
# plus what it sent to R2).
timed() { # label -- command…
  local label=$1; shift 2
  local b0 t0 t1
  b0=$(lo_bytes); t0=$(date +%s.%N)
  /usr/bin/time -f "%e s wall, %U s user, %S s sys (client)" -o "$WORK/client" "$@" >/dev/null 2>"$WORK/err" || true; cat "$WORK/client" >&2
  t1=$(date +%s.%N)
  python3 -c "
print(f'{\"$label\":34} {$t1-$t0:7.2f}s  over loopback {($(lo_bytes)-$b0)/2**20:8.1f} MiB')"
}

cd "$WORK"
echo "one object of $SIZE_MIB MiB in $PARTS parts of $PART_MIB MiB (strict server → strict server), release build"
timed "fresh copy" -- $BIN run "${FLAGS[@]}" --manifest fresh.jsonl --from s3://legacy/ --to r2://media/
fresh_r2
timed "fresh copy, --no-resume-uploads" -- $BIN run "${FLAGS[@]}" --no-resume-uploads --manifest fresh2.jsonl --from s3://legacy/ --to r2://media/
fresh_r2

# Killed with kill -9 once half the parts are recorded.
$BIN run "${FLAGS[@]}" --manifest resumed.jsonl --from s3://legacy/ --to r2://media/ >/dev/null 2>&1 &
RUN=$!
parts_recorded() { grep -c '"type":"part"' resumed.jsonl 2>/dev/null || true; }
until [ "$(parts_recorded)" -ge $((PARTS / 2)) ] 2>/dev/null; do
  kill -0 $RUN 2>/dev/null || { echo "the run ended before it was killed" >&2; exit 1; }
  sleep 0.05
done
kill -9 $RUN; wait $RUN 2>/dev/null || true
echo "killed after $(parts_recorded) of $PARTS part lines"
timed "resumed run" -- $BIN run "${FLAGS[@]}" --manifest resumed.jsonl --from s3://legacy/ --to r2://media/
grep '"type":"object"' resumed.jsonl | python3 -c "
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); print('record:', r['status'], r.get('resume') or '', r.get('error') or '')"
