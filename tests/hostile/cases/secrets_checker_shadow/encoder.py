"""Breaks the contract (output_dim says 128, forward gives 64) and ships its own `checker/`
package, whose `contract.py` writes an all-passed report: if the in-container agent ran the
submission's `checker` instead of the harness's, the verdict would be forged. It runs with
`python -P`, so the verdict stays `failed` at output_dim_match."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        self.output_dim = 128
