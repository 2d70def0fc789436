"""`aecc sandbox run` (one command under a profile) and `aecc cleanup` (what a killed harness left)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from harness.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cleanup", help="remove containers left by a harness that was killed")
    c.add_argument("--all", action="store_true", help="also those of harness processes still running")
    c.set_defaults(func=run_cleanup)

    sandbox = sub.add_parser("sandbox", help="run a command in a sandboxed container (debugging, demos)")
    ssub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    r = ssub.add_parser("run", help="run one command under a profile and print its outcome as JSON")
    r.add_argument("--profile", default="cpu")
    r.add_argument("--stage", default="check", choices=("fetch", "check", "prepare", "encode", "score"))
    r.add_argument("--image", default="runtime", help="a layer name (base, runtime, ...) or an image reference")
    r.add_argument("--mount", action="append", help="SRC:DST[:ro|rw] (read-only by default)")
    r.add_argument("--gpu", help="GPU UUID to pin (GPU profiles only)")
    r.add_argument("--timeout", help="wall-clock limit with a unit, e.g. 30s (default: the stage's)")
    r.add_argument("--log", help="file for the container's output (default under $AECC_HOME/logs)")
    r.add_argument("--quiet", action="store_true", help="do not echo the container's output")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    r.set_defaults(func=run_sandbox)


def run_cleanup(args: argparse.Namespace) -> int:
    from harness.sandbox import engine
    from harness.sandbox.cleanup import cleanup

    removed = cleanup(engine.connect(), everything=args.all)
    for name in removed:
        print(f"removed {name}")
    print(f"{len(removed)} container(s) removed")
    return 0


def parse_mount(text: str) -> Any:
    from harness.errors import UsageError
    from harness.sandbox.spec import Mount

    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise UsageError("bad --mount", expected="SRC:DST or SRC:DST:ro|rw", found=text)
    return Mount(Path(parts[0]).resolve(), parts[1], read_only=not (len(parts) == 3 and parts[2] == "rw"))


def run_sandbox(args: argparse.Namespace) -> int:
    from harness import paths
    from harness.layers.build import require_image
    from harness.layers.model import named_layer
    from harness.sandbox import engine
    from harness.sandbox.profiles import load_profile, parse_duration
    from harness.stage_names import Stage
    from harness.sandbox.run import run_stage
    from harness.sandbox.spec import Outcome, RunSpec

    profile = load_profile(args.profile)
    client = engine.connect()
    image = args.image
    if image in ("base", "torch", "runtime-deps", "runtime") or image.startswith("torch-"):
        image = require_image(client, named_layer(image))
    command = args.command[1:] if args.command and args.command[0] == "--" else args.command
    spec = RunSpec(
        stage=Stage(args.stage),
        image=image,
        command=tuple(command),
        mounts=tuple(parse_mount(m) for m in args.mount or ()),
        gpu_uuid=args.gpu,
        wall_clock_s=parse_duration(args.timeout, key="--timeout") if args.timeout else None,
    )
    log_path = Path(args.log) if args.log else paths.logs() / f"sandbox-{args.stage}-{int(time.time())}.log"
    result = run_stage(client, profile, spec, log_path, on_log=None if args.quiet else sys.stderr.write)
    print_json(result.to_dict())
    if result.outcome.is_infra_failure:
        return 2
    return 0 if result.outcome is Outcome.OK else 1
