"""Uses the network in forward (check stage, network off): a public address, DNS, the Hugging
Face hub and the host's docker0 address where the test listens. Every attempt must fail."""
import socket

from aecc_hostile_base import BaseEncoder, errno_of, facts

HOST_PORT = 47823


def _connect(addr):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect(addr)
    finally:
        sock.close()


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            facts("network", {
                "public": errno_of(_connect, ("1.1.1.1", 53)),
                "dns": errno_of(socket.getaddrinfo, "huggingface.co", 443),
                "host_docker0": errno_of(_connect, ("172.17.0.1", HOST_PORT)),
                "ifaces": sorted(__import__("os").listdir("/sys/class/net")),
            })
        return super().forward(audio)
