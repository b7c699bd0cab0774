#!/usr/bin/env bash
# Stops the tutela serve that tutela-up.sh started (database and data dir are left; tutela-up.sh recreates them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/common.sh"
stop_pidfile tutela "$BIN/tutela"
rm -f "$WORK/tutela.env"   # its setup token belongs to the stopped deployment
