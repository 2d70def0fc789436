"""Warm start for the trusted stages: import first, then wait for the harness's go.

    python -P -m checker.gate --go /ctl/go.json --max-wait S [--warm MOD ...] --then checker.STAGE

Importing torch and X-ARES costs a stage 3-4 s before it does any work, and on the demo suite that
is most of a stage. The harness therefore starts the prepare and score containers while the stages
before them run; this agent imports `--warm` modules, then polls for the go file in a folder the
harness alone writes (mounted read-only) and hands its `argv` to the stage's own `main`:

    {"argv": ["--jobs", "/out/jobs.json", ...]}   run checker.STAGE with these arguments
    {"cancel": true}                               nothing to do (cached, or an earlier stage failed)

Only trusted stages run this way; a submission's code never runs in a container that waits for its
inputs. `checker.contract --then-encode` reads the same go file after its checks (`wait_for_go`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from checker.jobs import Cancel, read_gate_message

GO_POLL_S = 0.05
EXIT_NO_GO = 3


def wait_for_go(path: Path, max_wait_s: float, poll_s: float = GO_POLL_S):
    """The go file's message (`Go` or `Cancel`) once it exists, or None after `max_wait_s`."""
    deadline = time.monotonic() + max_wait_s
    while True:
        try:
            return read_gate_message(path.read_text())
        except FileNotFoundError:
            pass
        # The harness renames the file into place, so a partial write is never seen; anything
        # unreadable is a harness bug and should fail loudly, hence no broad except here.
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker.gate")
    parser.add_argument("--go", required=True, type=Path, help="the go file the harness writes")
    parser.add_argument("--max-wait", required=True, type=float, help="seconds to wait for it at most")
    parser.add_argument("--warm", action="append", default=[], help="a module to import while waiting")
    parser.add_argument("--then", required=True, help="the stage: a checker module with main(argv)")
    args = parser.parse_args(argv)
    if not args.then.startswith("checker.") or args.then == "checker.gate":
        parser.error(f"--then must name a checker stage module, found {args.then!r}")
    stage = importlib.import_module(args.then)
    started = time.monotonic()
    for name in args.warm:
        importlib.import_module(name)
    print(f"aecc-gate: {args.then} warm in {time.monotonic() - started:.1f} s, waiting for {args.go}", flush=True)
    go = wait_for_go(args.go, args.max_wait)
    if go is None:
        print(f"aecc-gate: no go file at {args.go} within {args.max_wait:g} s; the harness that started this "
              "container is gone or stuck", file=sys.stderr, flush=True)
        return EXIT_NO_GO
    if isinstance(go, Cancel):
        print("aecc-gate: cancelled by the harness", flush=True)
        return 0
    return stage.main(list(go.argv))


if __name__ == "__main__":
    sys.exit(main())
