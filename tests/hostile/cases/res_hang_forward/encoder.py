"""A forward pass that never returns (a busy loop): the stage's wall clock must end it."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        n = 0
        while True:
            n += 1
