"""Allocates host memory without bound while it is constructed (fetch stage): the kernel must kill
it at the profile's memory cap, and the verdict names the cap."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        hoard = []
        while True:
            block = bytearray(32 * 1024 * 1024)
            block[::4096] = b"x" * len(block[::4096])
            hoard.append(block)
