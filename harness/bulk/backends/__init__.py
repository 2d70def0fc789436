"""Where a batch's submissions are worked on: this host (`local`) or the nodes of a Slurm cluster.

Both backends run the same `harness.bulk.run.Worker` on the same journal, so a submission gets the
same stages, profile, seeds and result wherever it runs; a backend only decides which process on
which machine works on which submission. (Kubernetes is an export, `aecc export kubernetes`, not a
backend: nothing is applied to a cluster by the harness.)
"""

from __future__ import annotations

import enum


class Backend(str, enum.Enum):
    LOCAL = "local"  # one process on this host works through the batch (`harness.bulk.run.run_batch`)
    SLURM = "slurm"  # one Slurm array task per submission (`harness.bulk.backends.slurm`)


__all__ = ["Backend"]
