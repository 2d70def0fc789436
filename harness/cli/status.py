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
    from harness.mail.watch import watch_state

    doc = collect(results)
    watching = watch_state(results)
    if args.json:
        # The watch is beside the status document (status.schema.json), not inside it.
        print_json(doc if watching is None else {**doc, "watch": watching})
    else:
        render_status(doc, console())
        if watching is not None:
            _render_watch(watching, console())
    return 0


def _render_watch(watching: dict, out) -> None:
    from rich.text import Text

    answers = ", ".join(f"{n} {state}" for state, n in watching["answers"].items() if n) or "none"
    lines = [f"watch: {watching['status']}, pid {watching['pid']} on {watching['host']}, since {watching['since']}, "
             f"until {watching['until']}",
             f"  {watching['passes']} pass(es), the last at {watching['last_pass']}; answers: {answers}",
             f"  sources: {', '.join(watching['sources'])}"]
    for line in lines:
        out.print(Text(line), highlight=False)
