"""An honest encoder whose requirements.txt is the attack (see expected.json)."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    pass
