"""An honest encoder whose one requirement is the attack: an sdist (served by the test's local
index) whose build backend runs code at install time (see ../index_package/backend.py)."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    pass
