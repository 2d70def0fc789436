"""`python -m harness.demodata ENV [--tasks ...] [--seed N] [--json]`: the generator's command line.

`make demo-data`, the bench and people preparing a data folder by hand run the generator from a
shell; parsing arguments and printing a summary has nothing to do with making the data, so it lives
here and `harness/demodata/__main__.py` only calls `main`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from harness.demodata.shards import generate
from harness.demodata.specs import ALL_TASKS, STAND_INS
from harness.errors import HarnessError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.demodata",
        description="Generate the tiny X-ARES-format test tasks (task modules: demo_tasks/<task>_task.py; "
                    "stand-ins for X-ARES's own modules by their registry names).",
    )
    parser.add_argument("env_dir", type=Path, help="X-ARES env root; one folder per task is written under it")
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help=f"default: all of {' '.join(ALL_TASKS)}; also: {' '.join(STAND_INS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the manifests as JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        manifests = generate(args.env_dir, args.tasks, args.seed)
    except HarnessError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(manifests, indent=1, sort_keys=True))
        return 0
    total = 0
    for name, m in manifests.items():
        size = sum((args.env_dir / name / f).stat().st_size for s in m["splits"].values() for f in s["shards"])
        total += size
        counts = " ".join(f"{s}={v['clips']}" for s, v in m["splits"].items())
        print(f"{name:12s} {counts:28s} {m['audio_seconds']:7.1f} s audio  {size / 1e6:5.2f} MB  sr={m['sample_rates']}")
    print(f"{len(manifests)} tasks, {total / 1e6:.2f} MB in {args.env_dir} ({time.monotonic() - started:.1f} s)")
    return 0
