#!/usr/bin/env bash
# Builds Ory Hydra v2.3.0 into $WORK/bin/hydra from a scratch module in $WORK/build (WORK: common.sh).
# Hydra's own go.mod replaces gobuffalo/pop/v6 with ory's fork; a replace in a dependency is
# ignored, so the scratch module repeats it (same pseudo-version as hydra v2.3.0's go.mod).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
HYDRA_VERSION=v2.3.0
POP_FORK=github.com/ory/pop/v6
POP_VERSION=v6.2.1-0.20241121111754-e5dfc0f3344b   # hydra v2.3.0 go.mod: replace github.com/gobuffalo/pop/v6 => ...
mkdir -p "$WORK/build" "$WORK/bin"
cd "$WORK/build"
if [ ! -f go.mod ]; then
  cat > go.mod <<MOD
module hydrabench

go 1.22

replace github.com/gobuffalo/pop/v6 => $POP_FORK $POP_VERSION
MOD
  cat > tools.go <<'SRC'
//go:build tools

package hydrabench

import _ "github.com/ory/hydra/v2"
SRC
  GOFLAGS=-mod=mod go get "github.com/ory/hydra/v2@$HYDRA_VERSION"
fi
nice -n 10 go build -trimpath \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION -X github.com/ory/hydra/v2/driver/config.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -o "$WORK/bin/hydra" github.com/ory/hydra/v2
"$WORK/bin/hydra" version
