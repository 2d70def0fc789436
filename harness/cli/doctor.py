"""`aecc doctor`: required vs found, before any work."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import console, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check engine, runtimes, GPUs, disk and images; print required vs found")
    p.add_argument("--profile", help="sandbox profile to check for (default: t4 with a GPU, else cpu)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--data", metavar="ENV",
                   help="a task data folder (aecc data fetch): check it against its manifests, list the tasks ready")
    p.add_argument("--models", metavar="DIR",
                   help="a model store (aecc models fetch): check it, and list the tasks it makes scoreable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness import doctor

    profile = args.profile or doctor.default_profile_for_host()
    report = doctor.run_doctor(profile, models=Path(args.models) if args.models else None,
                               data=Path(args.data) if args.data else None)
    if args.json:
        print_json(report.to_dict())
    else:
        doctor.render(report, console())
    return 0 if report.ok else 2
