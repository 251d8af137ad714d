#!/usr/bin/env bash
# SQLite source at scale: N rows of base64 images → R2 (s3s-fs on loopback) with
# write-back and clear_data. Prints rows/s and max RSS for two table sizes, to show that
# memory stays flat as the table grows. Results go in docs/benchmarks.md.
#
#   bash scripts/bench-sqlite.sh [rows_small] [rows_large]
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-10000}
LARGE=${2:-100000}
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
BIN=$PWD/target/release/r2migrate
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

PORT=$((30000 + RANDOM % 10000))
mkdir -p "$WORK/r2/media"
s3s-fs --host 127.0.0.1 --port $PORT --access-key k --secret-key s "$WORK/r2" >/dev/null 2>&1 &
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
export R2_ENDPOINT_URL=http://127.0.0.1:$PORT R2_ACCESS_KEY_ID=k R2_SECRET_ACCESS_KEY=s

cat >"$WORK/m.toml" <<'TOML'
[source]
table = "images"
data_column = "image_data"
content_type_column = "mime"
key_template = "images/{id}.{ext}"
[source.write_back]
key_column = "r2_key"
url_column = "image_url"
url_template = "https://images.example.com/{key}"
clear_data = true
TOML

for n in $SMALL $LARGE; do
  python3 - "$WORK/app-$n.db" "$n" <<'PY'
import base64, os, sqlite3, sys
path, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(path)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, image_data TEXT, mime TEXT, r2_key TEXT, image_url TEXT)")
png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
con.executemany("INSERT INTO images (id, image_data, mime) VALUES (?, ?, 'image/png')",
                ((i, base64.b64encode(png + os.urandom(4096)).decode()) for i in range(1, n + 1)))
con.commit()
PY
  cd "$WORK"
  /usr/bin/time -f "%e %M" -o time "$BIN" run --quiet --json --config m.toml --manifest m-$n.jsonl \
      --from "sqlite://$WORK/app-$n.db" --to "r2://media/run-$n" > out-$n.json
  read -r secs rss < time
  python3 - "$n" "$secs" "$rss" "$WORK/out-$n.json" <<'PY'
import json, sys
n, secs, rss, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))
print(f"{n:7} rows: copied {out['counts']['copied']}, rows rewritten {out['rows_rewritten']}, "
      f"{secs:6.1f}s = {n/secs:6.0f} rows/s, max RSS {rss/1024:6.1f} MiB")
PY
  cd - >/dev/null
done
