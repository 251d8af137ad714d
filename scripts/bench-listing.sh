#!/usr/bin/env bash
# Objects listed per second from an S3 source: r2migrate (flat, and folders listed at
# once) beside rclone lsf, on the same s3s-fs server over loopback.
#   scripts/bench-listing.sh [OBJECTS]   (default 100000; needs s3s-fs, rclone, a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
bin=target/release/r2migrate
[ -x "$bin" ] || cargo build --release --locked -q
command -v rclone >/dev/null || { echo "rclone is not installed: apt-get install rclone" >&2; exit 1; }
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
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export RCLONE_CONFIG_SRC_TYPE=s3 RCLONE_CONFIG_SRC_PROVIDER=Other RCLONE_CONFIG_SRC_ENV_AUTH=true
export RCLONE_CONFIG_SRC_ENDPOINT="http://127.0.0.1:$port"
best() { # best of three wall-clock seconds of "$@", its output's line count checked
  local b=999999
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$@" > "$work/out" 2>/dev/null; e=$(date +%s.%N)
    b=$(python3 -c "print(min($b, $e - $s))")
  done
  echo "$b"
}
count_plan() { python3 -c "import json,sys; print(json.load(open('$work/out'))['counts']['selected'])"; }
printf '| tool | how | seconds | objects/s |\n|---|---|---|---|\n'
for c in 1 8 32; do
  t=$(best "$bin" plan --json --quiet --from s3://bench/ --source-endpoint "http://127.0.0.1:$port" --to "$work/none" --manifest "$work/m.jsonl" --list-concurrency "$c")
  [ "$(count_plan)" = "$n" ] || { echo "r2migrate listed $(count_plan), not $n" >&2; exit 1; }
  echo "| r2migrate plan | --list-concurrency $c | $(printf %.2f "$t") | $(python3 -c "print(round($n/$t))") |"
done
for how in "--checkers 8" "--checkers 32" "--fast-list"; do
  # shellcheck disable=SC2086
  t=$(best rclone lsf -R --files-only $how src:bench)
  [ "$(wc -l < "$work/out")" = "$n" ] || { echo "rclone listed $(wc -l < "$work/out"), not $n" >&2; exit 1; }
  echo "| rclone $(rclone version | head -1 | cut -d' ' -f2) lsf -R | $how | $(printf %.2f "$t") | $(python3 -c "print(round($n/$t))") |"
done
