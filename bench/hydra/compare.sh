#!/usr/bin/env bash
# Side-by-side load comparison, Tutela vs Ory Hydra v2.3.0, with `tutela loadgen`, one operation
# at a time, back to back. Each run gets a freshly started server on a fresh database, and the
# other server is stopped while it runs (2 cores: an idle server's background work would count).
# Tutela is restarted for every run because loadgen spends the one-time bootstrap setup token.
#
#   ./compare.sh                              # 20 s measured after 5 s warm-up, 5,000/s offered, 64 in flight
#   DURATION=2s WARMUP=1s ./compare.sh        # smoke test
#   RUNS="tutela-introspect hydra-introspect" ./compare.sh   # a subset
#
# Env: DURATION (20s), WARMUP (5s), IN_FLIGHT (64), RATE (5000), RESULTS ($WORK/results),
#      RUNS (default: the five below), SETTLE (seconds idle before each run, 3),
#      HYDRA_MAX_CONNS (Hydra's pool; unset = Hydra's default, 2 x CPUs), CEILING_TIME (loadgen's
#      --ceiling-time, 2s). Output: $RESULTS/<run>.txt, and $RESULTS/summary.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
IN_FLIGHT=${IN_FLIGHT:-64}
RATE=${RATE:-5000}
SETTLE=${SETTLE:-3}
CEILING_TIME=${CEILING_TIME:-2s}
RESULTS=${RESULTS:-$WORK/results}
RUNS=${RUNS:-tutela-client-credentials tutela-introspect hydra-client-credentials hydra-introspect tutela-refresh}
TUTELA=$BIN/tutela
mkdir -p "$RESULTS"

cleanup() { "$HERE/tutela-down.sh" >/dev/null 2>&1 || true; "$HERE/hydra-down.sh" >/dev/null 2>&1 || true; }
trap cleanup EXIT

common=(--duration "$DURATION" --warmup "$WARMUP" --in-flight "$IN_FLIGHT" --ceiling-time "$CEILING_TIME")

header() { # the facts a reader of one result file needs
  echo "# run: $1"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  cores: $(nproc)  load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# tutela: $("$TUTELA" version 2>/dev/null | head -1), source $(cat "$BIN/tutela.build-info" 2>/dev/null || echo 'unknown (not built by build-tutela.sh)')"
  echo "# hydra: $("$BIN/hydra" version 2>/dev/null | awk '/Version/{print $2}')  postgres: $(psql_owner -d postgres -c 'show server_version')"
  echo "# command: $2"
  echo
}

# settle: let the database write out what the previous run left, then wait a little.
settle() { psql_owner -d postgres -c CHECKPOINT >/dev/null; sleep "$SETTLE"; }

run_tutela() { # name op
  local name=$1 op=$2 out=$RESULTS/$1.txt
  "$HERE/hydra-down.sh" >/dev/null
  "$HERE/tutela-up.sh"
  settle
  ( # a subshell, so the setup token reaches loadgen's environment only (never argv, nor later servers)
    set -a; . "$WORK/tutela.env"; set +a
    cmd=("$TUTELA" loadgen --target "$LOADGEN_TARGET" --tenant "$LOADGEN_TENANT" --admin-email "$LOADGEN_ADMIN_EMAIL" "--$op" "$RATE" "${common[@]}")
    echo "== $name: ${cmd[*]}"
    { header "$name" "LOADGEN_SETUP_TOKEN=<from tutela bootstrap> ${cmd[*]}"; "${cmd[@]}" 2>&1; } > "$out" || { echo "loadgen failed, see $out" >&2; tail -5 "$out" >&2; }
  )
  "$HERE/tutela-down.sh" >/dev/null
}

run_hydra() { # name op
  local name=$1 op=$2 out=$RESULTS/$1.txt
  "$HERE/tutela-down.sh" >/dev/null
  "$HERE/hydra-up.sh"
  settle
  ( # a subshell: the client secret reaches loadgen's environment only
    set -a; . "$WORK/client.env"; set +a
    cmd=("$TUTELA" loadgen --target "$HYDRA_PUBLIC_URL" --target-kind hydra --client-id "$HYDRA_CLIENT_ID" --hydra-admin "$HYDRA_ADMIN_URL" "--$op" "$RATE" "${common[@]}")
    echo "== $name: ${cmd[*]}"
    { header "$name" "LOADGEN_CLIENT_SECRET=<from client.env> ${cmd[*]}${HYDRA_MAX_CONNS:+ (hydra DSN max_conns=$HYDRA_MAX_CONNS)}"; "${cmd[@]}" 2>&1; } > "$out" || { echo "loadgen failed, see $out" >&2; tail -5 "$out" >&2; }
  )
  "$HERE/hydra-down.sh" >/dev/null
}

for r in $RUNS; do
  case $r in
    tutela-client-credentials) run_tutela "$r" client-credentials ;;
    tutela-introspect)         run_tutela "$r" introspect ;;
    tutela-refresh)            run_tutela "$r" refresh ;;
    hydra-client-credentials)  run_hydra "$r" client-credentials ;;
    hydra-introspect)          run_hydra "$r" introspect ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
done

# Summary: the markdown row of each run, and a verdict (FAIL: nothing succeeded; WARN: some errors).
status=0
{
  echo "# DURATION=$DURATION WARMUP=$WARMUP IN_FLIGHT=$IN_FLIGHT RATE=$RATE  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "| run | operation | offered/s | ok/s | p50 ms | p99 ms | p99.9 ms | errors | limit | ratio to limit | check |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for r in $RUNS; do
    row=$(grep -E '^\| (client_credentials|introspect|refresh) \|' "$RESULTS/$r.txt" | tail -1 || true)
    if [ -z "$row" ]; then echo "| $r | (no result) |||||||||FAIL |"; status=1; continue; fi
    okps=$(awk -F'|' '{gsub(/ /,"",$4); print $4}' <<<"$row")
    errs=$(awk -F'|' '{gsub(/^ +| +$/,"",$8); print $8}' <<<"$row")
    verdict=OK
    if awk -v v="$okps" 'BEGIN{exit !(v+0 <= 0)}'; then verdict=FAIL; status=1
    elif [ "$errs" != 0 ]; then verdict=WARN; fi
    echo "| $r $row $verdict |"
  done
} | tee "$RESULTS/summary.txt"
exit $status
