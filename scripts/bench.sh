#!/usr/bin/env bash
# Benchmark: r2migrate against rclone on the same loopback servers (two s3s-fs
# instances: one playing S3, one playing R2). Prints one line per run: tool, scenario,
# objects, bytes, seconds, objects/s, MiB/s, max RSS. Results go in docs/benchmarks.md.
#
#   bash scripts/bench.sh [small_count] [large_count]
#
# Needs: s3s-fs (bash .ci/install-test-servers), rclone and GNU time (apt-get install
# rclone time). Uses ~1.5 GB of disk under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-5000}
LARGE=${2:-4}
KEY=bench-key
SECRET=bench-secret
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --quiet
BIN=$PWD/target/release/r2migrate
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

source scripts/bench-lib.sh

start_server() { # name port
  mkdir -p "$WORK/$1"
  s3s-fs --host 127.0.0.1 --port "$2" --access-key $KEY --secret-key $SECRET "$WORK/$1" >/dev/null 2>&1 &
  wait_port "$2"
}
S3_PORT=$((20000 + RANDOM % 10000)); R2_PORT=$((S3_PORT + 1))
start_server s3 $S3_PORT
start_server r2 $R2_PORT

# Datasets: many small objects, a few large ones (multipart).
python3 - "$WORK/data" "$SMALL" "$LARGE" <<'PY'
import os, sys
root, small, large = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(small):
    d = os.path.join(root, "small", f"{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"obj-{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(8192))
os.makedirs(os.path.join(root, "large"), exist_ok=True)
for i in range(large):
    with open(os.path.join(root, "large", f"big-{i}.bin"), "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
PY
# The S3 source holds the small set (s3s-fs serves files placed under its root).
mkdir -p "$WORK/s3/src" && cp -r "$WORK/data/small" "$WORK/s3/src/"

export RCLONE_CONFIG_S3SRC_TYPE=s3 RCLONE_CONFIG_S3SRC_PROVIDER=Other
export RCLONE_CONFIG_S3SRC_ENDPOINT=http://127.0.0.1:$S3_PORT
export RCLONE_CONFIG_S3SRC_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_S3SRC_SECRET_ACCESS_KEY=$SECRET
export RCLONE_CONFIG_R2_TYPE=s3 RCLONE_CONFIG_R2_PROVIDER=Other
export RCLONE_CONFIG_R2_ENDPOINT=http://127.0.0.1:$R2_PORT
export RCLONE_CONFIG_R2_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_R2_SECRET_ACCESS_KEY=$SECRET
RCLONE=(env -u AWS_CA_BUNDLE rclone copy --transfers 32 --checkers 32 --s3-chunk-size 16M
        --s3-upload-cutoff 64M --s3-upload-concurrency 4 --s3-no-check-bucket)

export R2_ENDPOINT_URL=http://127.0.0.1:$R2_PORT R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_EC2_METADATA_DISABLED=true


SMALL_BYTES=$((SMALL * 8192)); LARGE_BYTES=$((LARGE * 96 * 1048576))
for round in 1 2; do
  mkdir -p "$WORK/r2/bench$round"
  cd "$WORK"
  measure r2migrate "local→R2 small" $SMALL $SMALL_BYTES -- $BIN run --quiet --manifest m-ls-$round.jsonl --from "$WORK/data/small" --to r2://bench$round/r2migrate-small
  measure rclone    "local→R2 small" $SMALL $SMALL_BYTES -- "${RCLONE[@]}" "$WORK/data/small" r2:bench$round/rclone-small
  measure r2migrate "local→R2 large" $LARGE $LARGE_BYTES -- $BIN run --quiet --manifest m-ll-$round.jsonl --from "$WORK/data/large" --to r2://bench$round/r2migrate-large
  measure rclone    "local→R2 large" $LARGE $LARGE_BYTES -- "${RCLONE[@]}" "$WORK/data/large" r2:bench$round/rclone-large
  measure r2migrate "S3→R2 small"    $SMALL $SMALL_BYTES -- $BIN run --quiet --manifest m-ss-$round.jsonl --from s3://src/small --to r2://bench$round/r2migrate-s3
  measure rclone    "S3→R2 small"    $SMALL $SMALL_BYTES -- "${RCLONE[@]}" s3src:src/small r2:bench$round/rclone-s3
  measure r2migrate "verify small"   $SMALL $SMALL_BYTES -- $BIN verify --quiet m-ls-$round.jsonl
  measure rclone    "check small"    $SMALL $SMALL_BYTES -- env -u AWS_CA_BUNDLE rclone check --checkers 32 "$WORK/data/small" r2:bench$round/rclone-small
  cd - >/dev/null
done
