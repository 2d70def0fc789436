"""`aecc status RESULTS [--json]`: where every submission stands, at any moment (also during a run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import console, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("status", help="where every submission of a RESULTS folder stands (also while a run works)")
    s.add_argument("results", help="the --out folder of `aecc score`")
    s.add_argument("--json", action="store_true", help="print the document (schema: harness/schemas/status.schema.json)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.bulk.status import collect
    from harness.errors import UsageError
    from harness.report.status import render_status

    results = Path(args.results)
    if not (results / "journal").is_dir():
        raise UsageError(f"{results} holds no journal", expected="the --out folder of an `aecc score` run",
                         found=str(results), fix="pass the folder given to `aecc score --out`")
    doc = collect(results)
    if args.json:
        print_json(doc)
    else:
        render_status(doc, console())
    return 0
