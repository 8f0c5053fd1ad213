#!/usr/bin/env bash
# Start a Docker daemon of our own in the background, everything under DIR:
#   DIR/docker.sock (its API), DIR/dockerd.pid, DIR/dockerd.log, DIR/data, DIR/exec.
# No iptables and no default bridge (what works on the CI machines); no image registry needed.
# Waits until `docker info` answers (DOCKERD_TIMEOUT seconds, 60 by default), then prints
# DOCKER_HOST=unix://DIR/docker.sock on stdout and exits 0. On failure it says why on stderr,
# stops the daemon it started and exits 1. Stop it later with: kill "$(cat DIR/dockerd.pid)".
#
# usage: .ci/start-dockerd.sh DIR
set -euo pipefail

dir=${1:?usage: $0 DIR}
timeout=${DOCKERD_TIMEOUT:-60}
say() { echo "start-dockerd: $*" >&2; }

for tool in dockerd docker; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "no $tool on PATH (Debian: apt-get install docker.io)"
        exit 1
    fi
done
if [ "$(id -u)" != 0 ]; then
    say "dockerd needs root (running as uid $(id -u))"
    exit 1
fi

mkdir -p "$dir/data" "$dir/exec"
dir=$(cd "$dir" && pwd)
socket="$dir/docker.sock"
dockerd --iptables=false --bridge=none \
    --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" --host "unix://$socket" \
    >"$dir/dockerd.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$dir/dockerd.launcher.pid"

deadline=$(($(date +%s%3N) + timeout * 1000))
until DOCKER_HOST="unix://$socket" docker info >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
        say "dockerd exited before answering (log: $dir/dockerd.log)"
        tail -n 15 "$dir/dockerd.log" >&2 || true
        exit 1
    fi
    if [ "$(date +%s%3N)" -ge "$deadline" ]; then
        say "dockerd did not answer on $socket within ${timeout}s (log: $dir/dockerd.log)"
        tail -n 15 "$dir/dockerd.log" >&2 || true
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
say "dockerd (pid $pid) answers on $socket"
echo "DOCKER_HOST=unix://$socket"
