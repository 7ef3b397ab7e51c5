#!/usr/bin/env bash
# Rootful Podman beside Docker (README: support matrix): Debian's podman, its Docker-compatible
# API service on a unix socket (started here like dockerd in engine.sh), the open-files and
# process limits its containers can start with on this host, and the local test images copied
# from Docker's store (docker save | podman load: no registry). Run after engine.sh and the Docker
# tests (which build the Claude test image); `scripts/test --engine podman` then runs the Podman
# subset against it. Idempotent: each step is skipped when its result is already there.
set -euo pipefail

SOCKET=${PODMAN_SOCKET:-/run/podman/podman.sock}
CONF=/etc/containers/containers.conf

log() { printf '[podman] %s\n' "$*" >&2; }

ensure_podman() {
    # catatonit: Podman's init for containers with `init: true` (Debian only recommends it).
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

service_limits() {
    # "nofile nproc": the hard limits of the process answering on $SOCKET (its peer pid).
    python3 - "$SOCKET" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
hard = {}
for line in open(f"/proc/{pid}/limits"):
    for key, name in (("Max open files", "nofile"), ("Max processes", "nproc")):
        if line.startswith(key):
            hard[name] = line[26:].split()[1]
print(hard["nofile"], hard["nproc"])
PY
}

ensure_limits() {
    # Rootful Podman gives every container nofile=1048576 and a large nproc, which a service
    # with lower hard limits (a host, or a container running CI) cannot set: "error setting
    # rlimit type 7". The one-time fix (README: Podman set-up) is the service's own limits as
    # Podman's default, then a restart of the service.
    local nofile nproc
    read -r nofile nproc < <(service_limits)
    if [ "$nofile" = unlimited ] || [ "$nofile" -ge 1048576 ]; then
        return 0
    fi
    if [ -e "$CONF" ] && grep -q '^[[:space:]]*default_ulimits' "$CONF"; then
        return 0
    fi
    [ "$nproc" = unlimited ] && nproc=4194304
    log "setting Podman's default_ulimits to its service's hard limits (nofile=$nofile nproc=$nproc) in $CONF"
    mkdir -p "$(dirname "$CONF")"
    if [ -e "$CONF" ] && grep -q '^\[containers\]' "$CONF"; then
        sed -i "/^\[containers\]/a default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]" "$CONF"
    else
        printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
            "$nofile" "$nofile" "$nproc" "$nproc" >>"$CONF"
    fi
    stop_service
    start_service
}

service_up() {
    python3 - "$SOCKET" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
    sys.exit(0 if s.recv(64).startswith(b"HTTP/1.") else 1)
except OSError:
    sys.exit(1)
PY
}

stop_service() {
    # Only the service this script started (its pid file); the config is read at start.
    if [ -e /run/podman/ci-service.pid ]; then
        kill "$(cat /run/podman/ci-service.pid)" 2>/dev/null || true
        rm -f /run/podman/ci-service.pid
        for _ in $(seq 1 20); do service_up || return 0; sleep 0.5; done
    fi
}

start_service() {
    if service_up; then
        return 0
    fi
    log "starting podman system service on $SOCKET"
    mkdir -p "$(dirname "$SOCKET")" /var/log
    nohup podman system service --time=0 "unix://$SOCKET" >/var/log/podman-service.log 2>&1 &
    echo $! >/run/podman/ci-service.pid
    for _ in $(seq 1 60); do
        service_up && return 0
        sleep 0.5
    done
    log "podman system service did not come up; see /var/log/podman-service.log"
    return 1
}

import_images() {
    # Every local test image (busybox, debian, the Claude images the Docker run built), under
    # the same name: Podman stores them as localhost/<name> and finds them by the short name.
    local image missing=()
    while read -r image; do
        podman image exists "$image" || missing+=("$image")
    done < <(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^sidecar-test/')
    if [ ${#missing[@]} -gt 0 ]; then
        log "importing ${missing[*]} from Docker's store"
        docker save "${missing[@]}" | podman load -q >/dev/null
    fi
}

start_health_ticker() {
    # Podman runs healthchecks from systemd timers; without systemd (this CI container) no
    # check ever runs, every service stays "starting" and `compose up --wait` waits forever.
    # Here a loop runs the due checks instead (README: Podman set-up, "no systemd").
    if [ -d /run/systemd/system ]; then
        return 0
    fi
    if [ -e /run/podman/ci-health.pid ] && kill -0 "$(cat /run/podman/ci-health.pid)" 2>/dev/null; then
        return 0
    fi
    log "no systemd: running Podman's healthchecks every 2 s from a loop"
    health_loop </dev/null >/dev/null 2>&1 &
    echo $! >/run/podman/ci-health.pid
    disown
}

health_loop() {
    trap '' HUP
    local id
    while sleep 2; do
        for id in $(podman ps -q --filter health=starting) $(podman ps -q --filter health=unhealthy); do
            podman healthcheck run "$id" >/dev/null 2>&1 || true
        done
    done
}

start=$(date +%s)
ensure_podman
start_service
ensure_limits
start_health_ticker
import_images
log "ready: podman $(podman version --format '{{.Server.Version}}') on unix://$SOCKET ($(( $(date +%s) - start )) s)"
