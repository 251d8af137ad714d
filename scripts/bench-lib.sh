# Shared by the benchmark scripts (sourced, not run): wait for a loopback server, and run
# a command under GNU time printing one result line. Expects $WORK to exist.

wait_port() { # port
  for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done
  echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}

measure() { # tool scenario objects bytes -- command…
  local tool=$1 scenario=$2 objects=$3 bytes=$4; shift 5
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r secs rss <"$WORK/time"
  python3 -c "
s=$secs; print(f'{\"$tool\":9} {\"$scenario\":14} {$objects:6} objects {$bytes/2**20:8.1f} MiB {s:7.2f}s {$objects/s:8.0f} obj/s {$bytes/2**20/s:7.1f} MiB/s  max RSS {$rss/1024:6.1f} MiB')"
}
