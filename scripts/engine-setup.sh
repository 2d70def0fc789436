#!/usr/bin/env bash
# Make sure a Docker engine answers, installing Debian's docker.io and starting dockerd when none
# does and this is root on Debian. Elsewhere, say what to do. Idempotent: a running engine is left
# alone. Also installs debootstrap, which builds the base image offline when no registry answers.
set -euo pipefail

log=${AECC_DOCKERD_LOG:-/var/log/aecc-dockerd.log}

engine_up() { docker info >/dev/null 2>&1; }

need_debootstrap() { ! command -v debootstrap >/dev/null 2>&1; }

setup_egress() {
    # The network of build and fetch stages (harness/sandbox/egress.py): the internet, not the host.
    if ! docker network inspect aecc-egress >/dev/null 2>&1; then
        docker network create --driver bridge \
            -o com.docker.network.bridge.name=aecc-egress0 \
            -o com.docker.network.bridge.enable_icc=false \
            --label org.aecc.network=egress aecc-egress >/dev/null
        echo "engine-setup: created network aecc-egress"
    fi
    if [ "$(id -u)" != 0 ] || ! command -v iptables >/dev/null 2>&1; then
        echo "engine-setup: not root or no iptables: egress rules not installed (aecc doctor will warn)" >&2
        return 0
    fi
    add() { iptables -C "$@" 2>/dev/null || iptables -I "$@"; }
    add INPUT -i aecc-egress0 -j DROP
    for net in 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 169.254.0.0/16 100.64.0.0/10; do
        add DOCKER-USER -i aecc-egress0 -d "$net" -j DROP
    done
    # Docker's embedded DNS forwards from the container's namespace: the host's resolvers stay
    # reachable on port 53 (inserted last, so they sit above the drops).
    for ns in $(awk '/^nameserver/{print $2}' /etc/resolv.conf); do
        case "$ns" in 127.*) continue ;; esac
        add DOCKER-USER -i aecc-egress0 -d "$ns" -p udp --dport 53 -j RETURN
        add DOCKER-USER -i aecc-egress0 -d "$ns" -p tcp --dport 53 -j RETURN
    done
    # AECC_EGRESS_ALLOW="ADDR:PORT ...": host services stages may reach (a package mirror).
    for pair in ${AECC_EGRESS_ALLOW:-}; do
        add INPUT -i aecc-egress0 -p tcp -d "${pair%:*}" --dport "${pair##*:}" -j ACCEPT
    done
}

if engine_up && ! need_debootstrap; then
    echo "engine-setup: engine answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    setup_egress
    exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    cat >&2 <<MSG
engine-setup: no Docker engine answers and this script can only install one as root on Debian.
  expected: 'docker info' to succeed
  found:    uid $(id -u), $( [ -f /etc/debian_version ] && echo "Debian $(cat /etc/debian_version)" || echo "not Debian")
  next:     install Docker Engine for your system (https://docs.docker.com/engine/install/),
            start it, and make sure your user may use it ('docker info' works); for offline base
            images also install debootstrap. Then run 'aecc doctor'.
MSG
    exit 2
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
need_debootstrap && missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    echo "engine-setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! engine_up; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl start docker
    else
        # No init system (containers, CI sandboxes): run dockerd in its own session so it
        # outlives this script.
        echo "engine-setup: starting dockerd (log: $log)"
        setsid nohup dockerd >"$log" 2>&1 < /dev/null &
    fi
    for _ in $(seq 1 60); do
        engine_up && break
        sleep 1
    done
fi

if ! engine_up; then
    echo "engine-setup: dockerd did not answer within 60 s; see $log" >&2
    tail -n 20 "$log" >&2 || true
    exit 2
fi
echo "engine-setup: engine answers ($(docker info --format '{{.ServerVersion}}'))"
setup_egress
