"""The honest reference the other cases are compared with: the shared base encoder as it is."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    pass
