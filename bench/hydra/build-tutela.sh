#!/usr/bin/env bash
# Builds tutela from this repository into bin/tutela and records
# which source it came from in bin/tutela.build-info (compare.sh copies it into every result).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
SRC=${TUTELA_SRC:-$(cd "$HERE/../.." && pwd)}
mkdir -p "$WORK/bin"
cd "$SRC"
nice -n 10 go build -o "$WORK/bin/tutela" ./cmd/tutela
dirty=$(git status --porcelain 2>/dev/null | wc -l)
echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?') ($dirty files modified in the work tree) built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $(go version | awk '{print $3}')" > "$WORK/bin/tutela.build-info"
cat "$WORK/bin/tutela.build-info"
