#!/usr/bin/env bash
# Starts `tutela serve` on a fresh PostgreSQL database tutela_bench, as the non-owner runtime
# role of docs/runtime-role.md (README: "The benchmarks on PostgreSQL run as such a role"),
# bootstraps the first super-admin and writes what `tutela loadgen` needs to tutela.env.
# Idempotent: stops a previous instance, recreates the database, data directory and keys.
# A bootstrap setup token works once (loadgen spends it), so run this again before every
# loadgen run against Tutela (compare.sh does).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
TUTELA=$BIN/tutela
DB=${BENCH_TUTELA_DB:-tutela_bench}
ROLE=${BENCH_TUTELA_ROLE:-tutela_bench_app}     # not tutela_app: never collide with a real deployment's role
ADDR=${BENCH_TUTELA_ADDR:-127.0.0.1:18080}       # not 8080: leave the default port to development servers
TENANT=${BENCH_TUTELA_TENANT:-bench}
ADMIN_EMAIL=${BENCH_TUTELA_ADMIN:-bench-admin@example.org}
DATA=$RUN/tutela-data
[ -x "$TUTELA" ] || { echo "missing $TUTELA: ./build-tutela.sh" >&2; exit 1; }

"$HERE/tutela-down.sh" >/dev/null

# Fresh database, data directory and secrets.
psql_owner -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
rm -rf "$DATA"; mkdir -m 700 "$DATA"
umask 077
openssl rand -base64 32 > "$RUN/tutela-master.key"        # TUTELA_MASTER_KEY_FILE: base64 256-bit key
rand_alnum 32 > "$RUN/tutela-db-password"                  # TUTELA_DATABASE_PASSWORD_FILE
DBPW=$(cat "$RUN/tutela-db-password")

common_env=(
  TUTELA_DATA_DIR="$DATA"
  TUTELA_MASTER_KEY_FILE="$RUN/tutela-master.key"
  TUTELA_HTTP_ADDR="$ADDR"
  TUTELA_METRICS_ADDR=off
  TUTELA_LOG_LEVEL="${BENCH_TUTELA_LOG_LEVEL:-warn}"
  TUTELA_HTTP_RATE_LIMIT_RPS=1000000 TUTELA_HTTP_RATE_LIMIT_BURST=1000000   # README: loadgen's traffic is one address
)
OWNER_URL="postgres://$PGUSER_OWNER@$PGHOST:$PGPORT/$DB?sslmode=disable"
RUNTIME_URL="postgres://$ROLE@$PGHOST:$PGPORT/$DB?sslmode=disable"

# 1. Migrations as the owner.
env "${common_env[@]}" TUTELA_DATABASE_URL="$OWNER_URL" "$TUTELA" migrate up > "$RUN/tutela-migrate.log" 2>&1 \
  || { tail -20 "$RUN/tutela-migrate.log" >&2; exit 1; }

# 2. The runtime role, with the grants of docs/runtime-role.md read from it (the document
# TestRuntimeRole_DocumentedGrantsAreTheTestedOnes keeps equal to the tested grants).
GRANTS=$(awk '/^```sql/{insql=1; next} /^```/{insql=0} insql && /^(GRANT|REVOKE) /' "$HERE/../../docs/runtime-role.md" \
  | sed -e "s/\btutela_app\b/$ROLE/g" -e "s/ON DATABASE tutela TO/ON DATABASE $DB TO/")
[ -n "$GRANTS" ] || { echo "no GRANT lines found in docs/runtime-role.md" >&2; exit 1; }
psql_owner -d "$DB" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END \$\$;
ALTER ROLE $ROLE LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '$DBPW';
$GRANTS
SQL

runtime_env=("${common_env[@]}" TUTELA_DATABASE_URL="$RUNTIME_URL" TUTELA_DATABASE_PASSWORD_FILE="$RUN/tutela-db-password")

# 3. Serve as the runtime role.
(cd "$RUN" && exec setsid nohup env "${runtime_env[@]}" "$TUTELA" serve > "$RUN/tutela.log" 2>&1 < /dev/null) &
echo $! > "$RUN/tutela.pid"
wait_http "http://$ADDR/readyz" 90 "$RUN/tutela.pid" || { tail -30 "$RUN/tutela.log" >&2; exit 1; }

# 4. The first super-admin; its one-time setup token is what loadgen sets itself up with.
OUT=$(cd "$RUN" && env "${runtime_env[@]}" "$TUTELA" bootstrap --tenant "$TENANT" --email "$ADMIN_EMAIL" 2>&1) \
  || { echo "$OUT" >&2; exit 1; }
TOKEN=$(awk '/One-time setup token/{getline; getline; print $1; exit}' <<<"$OUT")
[ -n "$TOKEN" ] || { echo "no setup token in bootstrap output:" >&2; echo "$OUT" >&2; exit 1; }

cat > "$WORK/tutela.env" <<ENV
LOADGEN_TARGET=http://$ADDR
LOADGEN_TENANT=$TENANT
LOADGEN_ADMIN_EMAIL=$ADMIN_EMAIL
LOADGEN_SETUP_TOKEN=$TOKEN
ENV
echo "tutela up: http://$ADDR as role $ROLE on $DB, pid $(cat "$RUN/tutela.pid"); setup token in tutela.env (one use)"
