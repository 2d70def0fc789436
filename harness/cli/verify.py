"""`aecc verify RESULT_OR_DIR... --pubkey PEM`: check signed results with one public key.

Every envelope is checked (signature, payload type, statement, result schema, subjects, the ZIP
when at hand, the per-clip outputs `clips.npz` the signed result names); every result.json must
have one. Exit 0 only when all of them verify, 1 when any
does not, 2 for a usage error. `--json` prints a report following verify-report.schema.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import console, print_json


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("verify", help="check the signatures of results (result.dsse.json) with a public key")
    v.add_argument("paths", nargs="+", metavar="RESULT_OR_DIR",
                   help="a result.dsse.json, a result.json, or a RESULTS folder (searched recursively)")
    v.add_argument("--pubkey", required=True, help="the public key PEM published with the results (signing.pub)")
    v.add_argument("--zip", help="the submission ZIP of the one result given: its sha256 must be the signed one "
                                 "(otherwise a submission.zip beside each result is checked when present)")
    v.add_argument("--json", action="store_true",
                   help="print a per-file JSON report (schema: harness/schemas/verify-report.schema.json)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.text import Text

    from harness.attest import load_public_key, verify_paths, verify_report

    public_key = load_public_key(Path(args.pubkey))
    outcomes = verify_paths([Path(p) for p in args.paths], public_key,
                            zip_path=Path(args.zip) if args.zip else None)
    report = verify_report(outcomes, public_key)
    out = console()
    for outcome in outcomes:
        if outcome.ok:
            line = Text("ok      ", style="green") + Text(f"{outcome.path}: {outcome.message}")
        else:
            line = Text("FAILED  ", style="red") + Text(f"{outcome.path}: [{outcome.problem.value}] {outcome.message}")
        out.print(line, highlight=False, soft_wrap=True)
    summary = f"{report['checked'] - report['failed']} of {report['checked']} verified with key {report['key_id']}"
    out.print(Text(summary, style="green" if report["ok"] else "red"), highlight=False, soft_wrap=True)
    if args.json:
        print_json(report)
    return 0 if report["ok"] else 1
