"""Prints 640 MiB to stdout each time it is imported (fetch and check stages): the harness keeps
only the profile's log cap and its own memory stays flat."""
import os

from aecc_hostile_base import BaseEncoder

_LINE = (b"y" * 1023 + b"\n") * 1024  # 1 MiB
for _ in range(640):
    os.write(1, _LINE)


class HostileEncoder(BaseEncoder):
    pass
