#!/usr/bin/env bash
# rewrite-urls and rollback over a WordPress-sized wp_posts in each database r2migrate
# rewrites: SQLite, PostgreSQL 15 and MariaDB 10.11, all on this machine (servers in a
# temp dir on loopback, as the tests start them). N posts of ~1.6 KB block markup, each
# with 4 URLs of the migrated fixtures (block JSON with escaped slashes, img src, a
# two-entry srcset), every tenth with none. Prints seconds, rows/s and peak RSS for the
# dry run, the rewrite and the rollback. Results go in docs/benchmarks.md.
#
#   bash scripts/bench-rewrite-db.sh [posts]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --locked
BIN=$PWD/target/release/r2migrate
WORK=$(mktemp -d)
chmod 755 "$WORK"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | head -1)
cleanup() {
  [ -f "$WORK/my/pid" ] && kill -9 "$(cat "$WORK/my/pid")" 2>/dev/null || true
  [ -d "$WORK/pg" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# The migration the URLs refer to: the bundled fixtures into a rehearsal directory.
"$BIN" run --quiet --from "$OLDPWD/fixtures/media" --to ./rehearsal >/dev/null
cp -a rehearsal pristine-rehearsal && cp r2migrate-manifest.jsonl pristine-manifest.jsonl

OLD='https://old-cdn.example.test/media/'
LOREM=$(python3 -c "print(('<p>' + 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ' * 4 + '</p>') * 5)")

# --- SQLite
python3 - "$WORK/wp.db" "$N" "$OLD" "$LOREM" <<'PY'
import sqlite3, sys
path, n, old, lorem = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
beach = old + "photos/2024/summer%20trip/beach%20sunset.jpg"
dunes = old + "photos/2024/summer%20trip/dunes%20%232.jpg"
def post(i):
    if i % 10 == 0:
        return lorem
    return ('<!-- wp:image {"id":%d,"url":"%s"} -->\n<figure><img src="%s" srcset="%s 300w, %s 1024w"/></figure>\n<!-- /wp:image -->\n%s'
            % (i, beach.replace("/", "\\/"), beach, dunes, beach, lorem))
con = sqlite3.connect(path)
con.execute("CREATE TABLE wp_posts (ID INTEGER PRIMARY KEY, post_content TEXT NOT NULL)")
con.executemany("INSERT INTO wp_posts VALUES (?, ?)", ((i, post(i)) for i in range(1, n + 1)))
con.commit()
PY

# --- MariaDB (Sequence engine for the rows)
mkdir my
mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal \
  --skip-test-db --datadir="$WORK/my/data" >/dev/null 2>&1
MYPORT=$((30000 + RANDOM % 10000))
/usr/sbin/mariadbd --no-defaults --user=root --datadir="$WORK/my/data" --port=$MYPORT \
  --bind-address=127.0.0.1 --socket="$WORK/my/sock" --pid-file="$WORK/my/pid" \
  --log-error="$WORK/my/err.log" --skip-name-resolve --innodb-buffer-pool-size=256M \
  --skip-log-bin &
for _ in $(seq 100); do mariadb --no-defaults -uroot --socket="$WORK/my/sock" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
mariadb --no-defaults -uroot --socket="$WORK/my/sock" <<SQL
CREATE USER 'wp'@'%' IDENTIFIED BY 'bench'; GRANT ALL ON *.* TO 'wp'@'%';
CREATE DATABASE wordpress CHARACTER SET utf8mb4;
USE wordpress;
CREATE TABLE wp_posts (ID bigint unsigned NOT NULL PRIMARY KEY, post_content longtext NOT NULL)
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
SET @beach = CONCAT('$OLD', 'photos/2024/summer%20trip/beach%20sunset.jpg');
SET @dunes = CONCAT('$OLD', 'photos/2024/summer%20trip/dunes%20%232.jpg');
INSERT INTO wp_posts SELECT seq, IF(seq % 10 = 0, '$LOREM', CONCAT('<!-- wp:image {"id":', seq,
  ',"url":"', REPLACE(@beach, '/', '\\\\/'), '"} -->\n<figure><img src="', @beach, '" srcset="',
  @dunes, ' 300w, ', @beach, ' 1024w"/></figure>\n<!-- /wp:image -->\n', '$LOREM'))
  FROM seq_1_to_$N;
SQL

# --- PostgreSQL (trust on loopback: the benchmark measures rewriting, not auth)
mkdir pg pgrun && chown postgres:postgres pg pgrun
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 >/dev/null
PGPORT=$((40000 + RANDOM % 10000))
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pgrun/pg.log" -w \
  -o "-p $PGPORT -k $WORK/pgrun -c listen_addresses=127.0.0.1" start >/dev/null
psql -q -h 127.0.0.1 -p $PGPORT -U postgres -c "CREATE DATABASE wordpress" postgres
psql -q -h 127.0.0.1 -p $PGPORT -U postgres wordpress <<SQL
CREATE TABLE wp_posts ("ID" bigint PRIMARY KEY, post_content text NOT NULL);
INSERT INTO wp_posts SELECT i, CASE WHEN i % 10 = 0 THEN '$LOREM' ELSE
  '<!-- wp:image {"id":' || i || ',"url":"' || replace('${OLD}photos/2024/summer%20trip/beach%20sunset.jpg', '/', '\\/')
  || '"} -->' || E'\n' || '<figure><img src="${OLD}photos/2024/summer%20trip/beach%20sunset.jpg" srcset="${OLD}photos/2024/summer%20trip/dunes%20%232.jpg 300w, ${OLD}photos/2024/summer%20trip/beach%20sunset.jpg 1024w"/></figure>'
  || E'\n<!-- /wp:image -->\n' || '$LOREM' END FROM generate_series(1, $N) AS i;
SQL

export MYSQL_PWD=bench
measure() { # name database-url
  local name=$1 db=$2
  # Each database starts from the migration alone (rollback undoes the objects too).
  rm -rf rehearsal && cp -a pristine-rehearsal rehearsal
  cp pristine-manifest.jsonl r2migrate-manifest.jsonl
  cat > "$name.toml" <<TOML
[[rewrite]]
database = "$db"
table = "wp_posts"
id_column = "ID"
columns = ["post_content"]
mode = "embedded"
from = ["$OLD"]
to = "https://media.example.test/{key}"
TOML
  for step in dry rewrite rollback; do
    case $step in
      dry) args=(rewrite-urls --quiet --json --config "$name.toml" --dry-run) ;;
      rewrite) args=(rewrite-urls --quiet --json --config "$name.toml" --no-db-backup) ;;
      rollback) args=(rollback --quiet --json --yes) ;;
    esac
    /usr/bin/time -f "%e %M" -o time "$BIN" "${args[@]}" > out.json || true
    read -r secs rss < time
    python3 - "$name" "$step" "$N" "$secs" "$rss" out.json <<'PY'
import json, sys
name, step, n, secs, rss = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
doc = json.load(open(sys.argv[6]))
if step == "rollback":
    what = "%d values put back" % sum(1 for u in doc["urls"] if u["action"] == "url_restored")
else:
    t = doc["tables"][0]
    what = "%d rows changed, %d URLs" % (t["rows_changed"], t["urls_changed"])
print(f"| {name} | {step} | {n:,} | {secs:.2f} | {n/secs:,.0f} | {rss/1024:.1f} | {what} |")
PY
  done
}

echo "| database | step | posts | s | posts/s | peak RSS MiB | outcome |"
echo "|---|---|---|---|---|---|---|"
measure sqlite "sqlite://$WORK/wp.db"
measure postgres "postgres://postgres@127.0.0.1:$PGPORT/wordpress?sslmode=disable"
measure mariadb "mariadb://wp@127.0.0.1:$MYPORT/wordpress?ssl-mode=DISABLED"
