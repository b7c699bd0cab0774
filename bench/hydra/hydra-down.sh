#!/usr/bin/env bash
# Stops the Hydra that hydra-up.sh started (the database is left; hydra-up.sh recreates it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
stop_pidfile hydra "$BIN/hydra"
