#!/usr/bin/env bash
# Starts Ory Hydra v2.3.0 (serve all --dev, opaque tokens) on a fresh PostgreSQL database
# hydra_bench, creates a client_credentials client and writes it to client.env.
# Idempotent: stops a previous instance and recreates the database every time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
HYDRA=$BIN/hydra
DB=${HYDRA_DB:-hydra_bench}
PUBLIC_PORT=${HYDRA_PUBLIC_PORT:-4444}
ADMIN_PORT=${HYDRA_ADMIN_PORT:-4445}
[ -x "$HYDRA" ] || { echo "missing $HYDRA: run build-hydra.sh" >&2; exit 1; }

"$HERE/hydra-down.sh" >/dev/null

psql_owner -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

# Hydra's pool defaults to 2 x CPUs connections; HYDRA_MAX_CONNS overrides it (e.g. 20, Tutela's default).
DSN="postgres://$PGUSER_OWNER@$PGHOST:$PGPORT/$DB?sslmode=disable${HYDRA_MAX_CONNS:+&max_conns=$HYDRA_MAX_CONNS&max_idle_conns=$HYDRA_MAX_CONNS}"
export DSN
export SECRETS_SYSTEM=$(rand_alnum 48)          # new every start: the database is new too
export LOG_LEVEL=${HYDRA_LOG_LEVEL:-warn}
export STRATEGIES_ACCESS_TOKEN=opaque
export SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT=$PUBLIC_PORT
export SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT=$ADMIN_PORT
export URLS_SELF_ISSUER=http://127.0.0.1:$PUBLIC_PORT/

"$HYDRA" migrate sql up -e --yes > "$RUN/hydra-migrate.log" 2>&1 || { tail -20 "$RUN/hydra-migrate.log" >&2; exit 1; }

# --sqa-opt-out: no telemetry reports (this machine has no outside network, and the run must not try).
export SQA_OPT_OUT=true
setsid nohup "$HYDRA" serve all --dev --sqa-opt-out > "$RUN/hydra.log" 2>&1 < /dev/null &
echo $! > "$RUN/hydra.pid"
unset SECRETS_SYSTEM
wait_http "http://127.0.0.1:$ADMIN_PORT/health/ready" 60 "$RUN/hydra.pid" || { tail -20 "$RUN/hydra.log" >&2; exit 1; }
wait_http "http://127.0.0.1:$PUBLIC_PORT/health/ready" 30 "$RUN/hydra.pid" || { tail -20 "$RUN/hydra.log" >&2; exit 1; }

# tutela loadgen sends the client's id and secret with HTTP Basic (req.SetBasicAuth) for the
# client_credentials grant, so the client uses client_secret_basic. The secret is alphanumeric:
# Hydra URL-decodes Basic credentials (RFC 6749 2.3.1) and loadgen does not encode them.
SECRET=$(rand_alnum 40)
RESP=$(curl -sS -f -X POST "http://127.0.0.1:$ADMIN_PORT/admin/clients" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg s "$SECRET" '{client_name:"loadgen", client_secret:$s, grant_types:["client_credentials"],
        response_types:["token"], token_endpoint_auth_method:"client_secret_basic", scope:"", access_token_strategy:"opaque"}')")
CLIENT_ID=$(jq -r .client_id <<<"$RESP")
[ -n "$CLIENT_ID" ] && [ "$CLIENT_ID" != null ] || { echo "client creation failed: $RESP" >&2; exit 1; }

umask 077
cat > "$WORK/client.env" <<ENV
HYDRA_CLIENT_ID=$CLIENT_ID
LOADGEN_CLIENT_SECRET=$SECRET
HYDRA_PUBLIC_URL=http://127.0.0.1:$PUBLIC_PORT
HYDRA_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT
ENV

# One grant to show the client works.
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$CLIENT_ID:$SECRET" -d grant_type=client_credentials "http://127.0.0.1:$PUBLIC_PORT/oauth2/token")
[ "$code" = 200 ] || { echo "client_credentials check answered $code" >&2; exit 1; }
echo "hydra $("$HYDRA" version | awk '/Version/{print $2}') up: public :$PUBLIC_PORT, admin :$ADMIN_PORT, pid $(cat "$RUN/hydra.pid"), client $CLIENT_ID (client.env)"
