#!/usr/bin/env bash
# Objects listed per second from an S3 source: r2migrate plan (one flat listing, and the
# tree walked by delimiter N folders at a time) beside rclone lsf -R (which walks by
# delimiter too), on the same s3s-fs server over loopback, in the same run.
#   scripts/bench-listing.sh [OBJECTS]   (default 100000; needs s3s-fs, rclone, GNU time)
# rclone's --fast-list is left out: it sends an empty delimiter, which s3s-fs reads as a
# delimiter and answers with nothing. A flat listing on s3s-fs walks and stats the whole
# bucket for every page (about 2 s per 1,000 keys at 100,000): that row shows the
# server's cost, not the client's.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
bin=target/release/r2migrate
[ -x "$bin" ] || cargo build --release --locked -q
command -v rclone >/dev/null || { echo "rclone is not installed: apt-get install rclone" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is not installed: apt-get install time" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root/bench"
python3 - "$work/root/bench" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = max(1, n // 1000)
for d in range(1000):
    os.makedirs(f"{root}/users/{d:04d}", exist_ok=True)
    for f in range(per):
        open(f"{root}/users/{d:04d}/avatar-{f:05d}.png", "wb").write(b"x")
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret "$work/root" >/dev/null 2>&1 &
server=$!
sleep 1
unset AWS_CA_BUNDLE # rclone refuses a CA bundle on a plain-HTTP endpoint
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export RCLONE_CONFIG_SRC_TYPE=s3 RCLONE_CONFIG_SRC_PROVIDER=Other RCLONE_CONFIG_SRC_ENV_AUTH=true
export RCLONE_CONFIG_SRC_ENDPOINT="http://127.0.0.1:$port"

best() { # the fastest of $runs (3) runs of "$@", as "seconds cpu_seconds max_rss_mib"
  local b="" run
  for _ in $(seq "${runs:-3}"); do
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > "$work/out" 2>/dev/null
    run=$(tail -1 "$work/time" | awk '{printf "%.2f %.2f %.1f", $1, $2 + $3, $4 / 1024}')
    if [ -z "$b" ] || awk -v a="${run%% *}" -v b="${b%% *}" 'BEGIN { exit !(a < b) }'; then b=$run; fi
  done
  echo "$b"
}
row() { # tool how "seconds cpu rss"
  local t c m
  read -r t c m <<< "$3"
  echo "| $1 | $2 | $t | $(awk -v n="$n" -v t="$t" 'BEGIN { printf "%d", n / t }') | $c | $m |"
}
count_plan() { python3 -c "import json; print(json.load(open('$work/out'))['counts']['selected'])"; }

echo "$n objects in 1,000 folders, s3s-fs $(s3s-fs --version 2>/dev/null | head -1 | cut -d' ' -f2), $(nproc) cores"
echo
echo '| tool | how | seconds | objects/s | CPU s | max RSS MiB |'
echo '|---|---|---|---|---|---|'
for c in 8 32 1; do
  runs=3; [ "$c" = 1 ] && runs=1 # the flat listing is slow on s3s-fs: once is enough
  r=$(best "$bin" plan --json --quiet --from s3://bench/ --source-endpoint "http://127.0.0.1:$port" \
    --to "$work/none" --manifest "$work/m.jsonl" --list-concurrency "$c")
  [ "$(count_plan)" = "$n" ] || { echo "r2migrate listed $(count_plan), not $n" >&2; exit 1; }
  row "r2migrate plan" "--list-concurrency $c" "$r"
done
runs=3
for c in 8 32; do
  r=$(best rclone lsf -R --files-only --disable ListR --checkers "$c" src:bench)
  [ "$(wc -l < "$work/out")" = "$n" ] || { echo "rclone listed $(wc -l < "$work/out"), not $n" >&2; exit 1; }
  row "rclone $(rclone version | head -1 | cut -d' ' -f2) lsf -R" "--checkers $c" "$r"
done
