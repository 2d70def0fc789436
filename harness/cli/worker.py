"""`aecc worker --batch FILE --index N`: what one Slurm array task runs; not typed by people.

It works on submission N of a batch that `aecc score --backend slurm` submitted, with the local
backend's stages and profile, on this node's Docker engine; the journal and results go to the
shared RESULTS folder (`harness.bulk.backends.slurm.node.run_job`). Run again, it redoes nothing done.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="work on one submission of a Slurm batch (run by the batch's jobs)",
                       description="Score submission N of a batch file written by `aecc score --backend slurm`. "
                                   "Exit codes: 0 scored in full or nothing left to do, 1 the submission was "
                                   "excluded or has a failed task, 2 infrastructure.")
    w.add_argument("--batch", required=True, metavar="FILE", help="RESULTS/slurm/<batch>.json")
    w.add_argument("--index", type=int, metavar="N",
                   help="which submission of the batch (default: $SLURM_ARRAY_TASK_ID)")
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.bulk.backends.slurm.node import run_job

    return run_job(Path(args.batch), args.index)
