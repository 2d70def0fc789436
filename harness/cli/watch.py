"""`aecc watch SOURCE... --until INSTANT`: take new mail and run `aecc score`'s pipeline on it, answering
each sender after the check, until the deadline (harness.mail.watch; docs/MAIL.md)."""

from __future__ import annotations

import argparse

from harness.cli.common import build_options, console, progress_printer
from harness.cli.score import add_mail_flags, add_score_flags, batch_spec, mail_options


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("watch", help="take new mail (IMAP IDLE, else polling) and score it until the deadline, "
                                     "answering each sender after the check")
    add_score_flags(s)
    add_mail_flags(s)
    s.add_argument("--until", required=True, metavar="INSTANT",
                   help="the deadline, ISO 8601 with its zone (2025-04-30T23:59:59Z): the watch stops there, and "
                        "mail the server received later is marked late")
    s.add_argument("--accept-late", action="store_true", help="score late mail too (it is marked late)")
    s.add_argument("--poll", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between looks when IMAP IDLE is not available (default 60)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.bulk.backends import Backend
    from harness.bulk.status import collect
    from harness.mail.watch import parse_instant, watch
    from harness.report.status import render_status
    from harness.sandbox import engine

    out = console()
    until = parse_instant(args.until)
    mail = mail_options(args, until=until.strftime("%Y-%m-%dT%H:%M:%SZ"), accept_late=args.accept_late)
    spec = batch_spec(args, Backend.LOCAL, out, mail)
    say = progress_printer(out)
    out.print(f"watching {len(spec.inputs)} source(s) until {args.until}; Ctrl-C stops (a new `aecc watch` "
              "resumes)", highlight=False, markup=False)
    code = watch(spec, until, connect=engine.connect, build_options=build_options(args), poll_s=args.poll,
                 progress=lambda sha, message: say(f"{sha[:12]} {message}"), say=say)
    render_status(collect(spec.out), out)
    out.print(f"results: {spec.out}  (aecc status {spec.out})", highlight=False)
    return code
