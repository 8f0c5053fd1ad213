#!/usr/bin/env bash
# Stop the Docker daemon .ci/start-dockerd.sh started in DIR, by its PID: SIGTERM, then
# SIGKILL after DOCKERD_STOP_TIMEOUT seconds (20 by default). Quiet if it is not running.
#
# usage: .ci/stop-dockerd.sh DIR
set -uo pipefail

dir=${1:?usage: $0 DIR}
timeout=${DOCKERD_STOP_TIMEOUT:-20}
pid=$(cat "$dir/dockerd.pid" 2>/dev/null || cat "$dir/dockerd.launcher.pid" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    exit 0
fi
kill -TERM "$pid" 2>/dev/null || exit 0
deadline=$(($(date +%s%3N) + timeout * 1000))
while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s%3N)" -ge "$deadline" ]; then
        echo "stop-dockerd: dockerd (pid $pid) still running after ${timeout}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
echo "stop-dockerd: dockerd (pid $pid) stopped" >&2
