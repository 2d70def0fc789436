#!/usr/bin/env bash
# Host tools the test-data generator needs (harness/taskgen.py): espeak-ng, which speaks the digit
# words of the `tiny_digits` task. Installs it with apt-get when missing and this is root on Debian;
# elsewhere says what to do and exits 2. Idempotent: an installed tool is left alone.
set -euo pipefail

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)

if [ ${#missing[@]} -eq 0 ]; then
    echo "host-tools: espeak-ng $(espeak-ng --version 2>/dev/null | awk '{print $4; exit}') present; nothing to do"
    exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<MSG
host-tools: ${missing[*]} missing and this script can only install it as root on Debian.
  expected: 'espeak-ng --version' to succeed
  found:    uid $(id -u), $( [ -f /etc/debian_version ] && echo "Debian $(cat /etc/debian_version)" || echo "not Debian")
  next:     install espeak-ng with your system's package manager
            (Debian/Ubuntu: 'sudo apt-get install espeak-ng'; Fedora: 'sudo dnf install espeak-ng';
            macOS: 'brew install espeak-ng'), then re-run this script.
MSG
    exit 2
fi

echo "host-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
espeak-ng --version
echo "host-tools: done"
