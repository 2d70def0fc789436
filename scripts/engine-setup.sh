#!/usr/bin/env bash
# Make sure a Docker engine answers, installing Debian's docker.io and starting dockerd when none
# does and this is root on Debian. Elsewhere, say what to do. Idempotent: a running engine is left
# alone. Also installs debootstrap, which builds the base image offline when no registry answers.
set -euo pipefail

log=${AECC_DOCKERD_LOG:-/var/log/aecc-dockerd.log}

engine_up() { docker info >/dev/null 2>&1; }

need_debootstrap() { ! command -v debootstrap >/dev/null 2>&1; }

if engine_up && ! need_debootstrap; then
    echo "engine-setup: engine answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)); nothing to do"
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
