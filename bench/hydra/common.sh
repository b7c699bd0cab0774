# Shared helpers for the Tutela / Hydra comparison scripts (sourced, not run).
HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
WORK=${BENCH_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/tutela-bench-hydra}
BIN=$WORK/bin
RUN=$WORK/run
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER_OWNER=${PGUSER_OWNER:-postgres}
mkdir -p "$RUN"

psql_owner() { psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER_OWNER" -v ON_ERROR_STOP=1 -qAt "$@"; }

# stop_pidfile NAME EXPECTED_EXE: stops the process recorded in $RUN/NAME.pid if it is still
# the program we started (checked through /proc, so a reused pid is never signalled).
stop_pidfile() {
  local name=$1 exe=$2 pidf=$RUN/$1.pid pid
  [ -f "$pidf" ] || { echo "$name: not running (no pid file)"; return 0; }
  pid=$(cat "$pidf")
  if [ -n "$pid" ] && [ -r "/proc/$pid/exe" ] && [ "$(readlink -f "/proc/$pid/exe")" = "$(readlink -f "$exe")" ]; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then echo "$name: still alive after 20s, KILL"; kill -KILL "$pid"; fi
    echo "$name: stopped (pid $pid)"
  else
    echo "$name: pid $pid is not running $exe (already stopped)"
  fi
  rm -f "$pidf"
}

# wait_http URL SECONDS [PIDFILE]: waits for a 200 from URL, failing early if the process died.
wait_http() {
  local url=$1 secs=$2 pidf=${3:-} i
  for i in $(seq 1 $((secs * 5))); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; then return 0; fi
    if [ -n "$pidf" ] && ! kill -0 "$(cat "$pidf")" 2>/dev/null; then echo "process died while waiting for $url" >&2; return 1; fi
    sleep 0.2
  done
  echo "timed out after ${secs}s waiting for $url" >&2
  return 1
}

# An alphanumeric random string (no characters that basic-auth or URL decoding would alter).
rand_alnum() { openssl rand -base64 $(( $1 * 2 )) | tr -dc 'A-Za-z0-9' | head -c "$1"; }
