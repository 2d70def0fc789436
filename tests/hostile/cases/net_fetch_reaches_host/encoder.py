"""Constructed in the fetch stage (network on, for weight downloads), it connects to a service
listening on the host's docker0 address: the download network should reach the internet, not the
organizer's own machine (its services, metadata endpoints, the engine if exposed on TCP)."""
import socket

from aecc_hostile_base import BaseEncoder, errno_of, facts

HOST_PORT = 47823


def _connect(addr):
    sock = socket.create_connection(addr, timeout=3)
    sock.sendall(b"HOSTILE-FETCH-REACHED-HOST\n")
    sock.close()


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        facts("fetch_host", {"host_docker0": errno_of(_connect, ("172.17.0.1", HOST_PORT))})
