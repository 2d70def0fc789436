"""`aecc`: the command line. One module per command group; each parses its arguments, calls a
pipeline or a stage, and renders what comes back. No logic of its own.

Exit codes: 0 success, 1 the submission (or the work in a sandbox) failed, 2 usage or
infrastructure error, 130 interrupted. SIGTERM is turned into the same interruption as Ctrl-C so
that every container the harness started is removed on the way out.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Sequence

from harness.cli import (
    data,
    doctor,
    export,
    images,
    keys,
    leaderboard,
    models,
    sandbox,
    score,
    status,
    validate,
    verify,
    watch,
    worker,
)
from harness.cli.common import console
from harness.errors import HarnessError

EPILOG = """examples:
  aecc doctor                         check engine, runtimes, GPUs, disk, images
  aecc validate my.zip                will this ZIP pass and run on a T4?
  aecc keys init --out keys/          the key pair results are signed with
  aecc score inbox.mbox zips/ --data ENV --task-set icme2025-final --out results/ --key keys/signing.key
  aecc watch imaps://aecc@mail.example/INBOX --until 2025-04-30T23:59:59Z --reply smtps://aecc@mail.example ...
                                      the same, from IMAP, answering each sender, until the deadline
  aecc status results/                where every submission stands (also during a run)
  aecc verify results/ --pubkey keys/signing.pub
  aecc leaderboard results/ --pubkey keys/signing.pub --out site/ --reference icme2025-final
  aecc images build                   build (or find cached) base -> torch -> runtime
  aecc images list
  aecc sandbox run --image runtime -- python -m checker.probe
  aecc cleanup                        remove containers a killed harness left behind
"""

#: the command groups, in the order `aecc --help` lists them
COMMANDS = (doctor, validate, score, watch, status, verify, keys, leaderboard, images, models, data, sandbox, export,
            worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aecc",
        description="Sandboxed validation and scoring for the ICME 2025 Audio Encoder Capability Challenge.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def _terminate(signum: int, _frame: Any) -> None:
    # Same path as Ctrl-C: `finally` blocks remove the containers this process started.
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        from rich.text import Text

        # Text, not markup: messages quote untrusted names that may contain [brackets].
        console().print(Text("error: ", style="red") + Text(exc.render()), highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        console().print("[yellow]interrupted; containers started by this run were removed[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
