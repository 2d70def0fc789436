#!/usr/bin/env bash
# The Slurm pieces the tests of the Slurm backend need (tests/harness/bulk/test_slurm.py starts a
# single-node cluster of its own from them): Debian's slurmctld, slurmd, slurm-client and munge,
# installed with apt-get when missing and this is root on Debian; elsewhere says what to do and exits 2.
# Idempotent: installed packages are left alone. Nothing is started here (no systemd is assumed):
# the tests start munged, slurmctld and slurmd with configuration files of their own, and an
# organizer's cluster is the cluster's administrators' business.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "slurm-setup: slurm $(dpkg-query -W -f='${Version}' slurm-client), munge $(dpkg-query -W -f='${Version}' munge) present; nothing to do"
    exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<MSG
slurm-setup: ${missing[*]} missing and this script can only install them as root on Debian.
  expected: the packages ${packages[*]} installed (slurmctld, slurmd, sbatch, squeue, scontrol, munged)
  found:    uid $(id -u), $( [ -f /etc/debian_version ] && echo "Debian $(cat /etc/debian_version)" || echo "not Debian")
  next:     install them with your system's package manager (Debian/Ubuntu:
            'sudo apt-get install slurmctld slurmd slurm-client munge'), then re-run this script.
MSG
    exit 2
fi

echo "slurm-setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing must not start daemons (policy-rc.d says no to invoke-rc.d; there is no systemd anyway):
# the packages' default configuration is not the tests' and would hold their ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# (sbatch --version would need a slurm.conf; the package versions need none)
echo "slurm-setup: slurm $(dpkg-query -W -f='${Version}' slurm-client), munge $(dpkg-query -W -f='${Version}' munge); done"
