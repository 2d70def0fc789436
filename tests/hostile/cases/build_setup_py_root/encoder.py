"""An honest encoder shipped with install- and start-up hooks at its root (setup.py,
sitecustomize.py, usercustomize.py, a .pth file). None of them is ever run: not on the
host (intake never imports or installs the submission), not in the build (only requirements.txt is
installed). Each would leave a HOSTILE-ESCAPE-* file behind if it ran."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    pass
