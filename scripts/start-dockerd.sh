#!/usr/bin/env bash
# Starts a Docker engine in the background unless one already answers.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
log="${TMPDIR:-/tmp}/shoal-dockerd.log"
echo "start-dockerd: starting dockerd (log: $log)" >&2
$SUDO sh -c "nohup dockerd >'$log' 2>&1 &"
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then exit 0; fi
    sleep 1
done
echo "start-dockerd: dockerd did not answer within 60 s; see $log" >&2
tail -20 "$log" >&2 || true
exit 1
