#!/usr/bin/env bash
# Host tools the tests need, installed with apt-get when missing and this is root on Debian; elsewhere
# says what to do and exits 2. Idempotent: an installed tool is left alone.
#   espeak-ng  the test-data generator (harness/demodata/) speaks the digit words of `tiny_digits`
#   chromium   the leaderboard page is checked in a real headless browser (tests/harness/rank/test_browser.py);
#              fonts-dejavu-core so that its screenshots have glyphs
#   kubectl    the Kubernetes export is built with `kubectl kustomize` (Debian: kubernetes-client)
#   slurm      slurmctld, slurmd, slurm-client, munge: the Slurm backend's tests start a one-node cluster
#              (scripts/slurm-setup.sh; run first, since the checks below end the script early)
#   dovecot    the mail loop's tests (tests/harness/mail) read submissions from a real IMAP server
#              (Debian: dovecot-imapd; the tests start it themselves, without systemd)
set -euo pipefail

bash "$(dirname "$0")/slurm-setup.sh"

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    missing+=(chromium fonts-dejavu-core)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "host-tools: espeak-ng $(espeak-ng --version 2>/dev/null | awk '{print $4; exit}'), $( (chromium --version || chromium-browser --version) 2>/dev/null | head -n1), kubectl, dovecot $(dovecot --version 2>/dev/null | awk '{print $1}') present; nothing to do"
    exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<MSG
host-tools: ${missing[*]} missing and this script can only install them as root on Debian.
  expected: 'espeak-ng --version', 'chromium --version', 'kubectl version --client' and 'dovecot --version' to succeed
  found:    uid $(id -u), $( [ -f /etc/debian_version ] && echo "Debian $(cat /etc/debian_version)" || echo "not Debian")
  next:     install them with your system's package manager
            (Debian/Ubuntu: 'sudo apt-get install espeak-ng chromium kubernetes-client dovecot-imapd'; Fedora: 'sudo dnf install
            espeak-ng chromium dovecot'; macOS: 'brew install espeak-ng dovecot' and a Chromium or Chrome on PATH as 'chromium'),
            then re-run this script.
MSG
    exit 2
fi

echo "host-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
espeak-ng --version
chromium --version 2>/dev/null || chromium-browser --version
kubectl version --client 2>/dev/null | sed -n 1p  # sed reads all: head would SIGPIPE kubectl under pipefail (exit 141)
echo "host-tools: done"
