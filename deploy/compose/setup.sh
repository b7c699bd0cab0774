#!/bin/sh
# Generates the secrets compose.yaml reads, once: a random database password, a master key, a
# local CA and TLS certificates for Tutela (localhost) and PostgreSQL (postgres). Nothing here is
# checked in; secrets/ is git-ignored and private to you. Needs openssl.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets
cd secrets
if [ -e master_key ]; then
  echo "deploy/compose/secrets already holds secrets; remove it to start over" >&2
  exit 1
fi
openssl rand -base64 32 | tr -d '\n' > db_password
openssl rand -base64 32 > master_key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=Tutela compose CA" -keyout ca.key -out ca.crt 2>/dev/null
for pair in "tls:localhost" "db:postgres"; do
  name=${pair%%:*} host=${pair#*:}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$host" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
rm -f ca.key ca.srl
# The containers run as other users (Tutela 65532, PostgreSQL's entrypoint as root) and Docker
# bind-mounts these files as they are: readable inside, while the 0700 directory keeps other
# local users out.
chmod 644 ./*
echo "secrets written to $(pwd); next: docker compose up -d"
