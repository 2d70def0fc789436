"""The network of stages that need one (build, fetch): the internet, but nothing on the host's side.

Docker's default bridge lets a container reach every service listening on the host and on the
private networks around it. Stages with network use `aecc-egress` instead: a bridge with
inter-container traffic off, whose traffic to the host itself (INPUT) and to private, link-local
and carrier-grade NAT ranges (DOCKER-USER) is dropped, except DNS to the host's resolvers (Docker's
embedded DNS forwards from the container's namespace). `scripts/engine-setup.sh` creates the
network and the rules as root; `aecc doctor` reports whether they are there; where they are not,
stages fall back to the default bridge and doctor says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

NETWORK = "aecc-egress"
BRIDGE = "aecc-egress0"
BLOCKED_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")

_cache: dict[int, str] = {}


def network_for(client: Any) -> str:
    """`aecc-egress` where it exists, else Docker's `bridge` (doctor warns about the difference)."""
    key = id(client)
    if key not in _cache:
        import docker.errors

        try:
            client.networks.get(NETWORK)
            _cache[key] = NETWORK
        except docker.errors.NotFound:
            _cache[key] = "bridge"
    return _cache[key]


def _iptables(*args: str) -> bool:
    if shutil.which("iptables") is None:
        return False
    return subprocess.run(["iptables", *args], capture_output=True, timeout=30).returncode == 0


def rules_present() -> bool | None:
    """Whether the drop rules are installed; None where this process cannot tell (not root)."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return None
    return _iptables("-C", "INPUT", "-i", BRIDGE, "-j", "DROP") and all(
        _iptables("-C", "DOCKER-USER", "-i", BRIDGE, "-d", net, "-j", "DROP") for net in BLOCKED_RANGES
    )


def allow_host_port(address: str, port: int) -> None:
    """Let egress containers reach one host service (an organizer's package mirror, a test index)."""
    rule = ("INPUT", "-i", BRIDGE, "-p", "tcp", "-d", address, "--dport", str(port), "-j", "ACCEPT")
    if not _iptables("-C", *rule):
        _iptables("-I", *rule)


def revoke_host_port(address: str, port: int) -> None:
    _iptables("-D", "INPUT", "-i", BRIDGE, "-p", "tcp", "-d", address, "--dport", str(port), "-j", "ACCEPT")
