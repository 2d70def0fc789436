"""Tries the network from forward in the encode stage (network off): every attempt must fail."""
import os
import socket

from aecc_hostile_base import BaseEncoder, errno_of, facts


def _connect(addr):
    sock = socket.create_connection(addr, timeout=3)
    sock.close()


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            facts("network_encode", {
                "public": errno_of(_connect, ("1.1.1.1", 53)),
                "dns": errno_of(socket.getaddrinfo, "huggingface.co", 443),
                "host_docker0": errno_of(_connect, ("172.17.0.1", 47823)),
                "ifaces": sorted(os.listdir("/sys/class/net")),
            })
        return super().forward(audio)
