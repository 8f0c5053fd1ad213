#!/usr/bin/env bash
# Stop the Docker daemon .ci/start-dockerd.sh started in DIR, by its PID: SIGTERM, then
# SIGKILL after DOCKERD_STOP_TIMEOUT seconds (20 by default). Quiet if it is not running.
# The daemon is ours alone: first its containers and networks go, so that no bridge interface
# of it (each holding a subnet) outlives it on the host.
#
# usage: .ci/stop-dockerd.sh DIR
set -uo pipefail

dir=${1:?usage: $0 DIR}
timeout=${DOCKERD_STOP_TIMEOUT:-20}
pid=$(cat "$dir/dockerd.pid" 2>/dev/null || cat "$dir/dockerd.launcher.pid" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    exit 0
fi
export DOCKER_HOST="unix://$dir/docker.sock"
bridges=$(timeout 10 docker network ls --filter type=custom --filter driver=bridge \
    --format 'br-{{.ID}}' 2>/dev/null || true)
containers=$(timeout 10 docker ps -aq 2>/dev/null || true)
if [ -n "$containers" ]; then
    # shellcheck disable=SC2086  # one id per word
    timeout 60 docker rm -f $containers >/dev/null 2>&1 || true
fi
timeout 30 docker network prune -f >/dev/null 2>&1 || true

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
for bridge in $bridges; do  # left by a daemon that could not remove its networks
    if [ -e "/sys/class/net/$bridge" ]; then
        ip link delete "$bridge" 2>/dev/null || true
    fi
done
echo "stop-dockerd: dockerd (pid $pid) stopped" >&2
