"""`aecc`: the command line. It parses arguments and calls the stages; it holds no logic of its own.

Exit codes: 0 success, 1 the submission (or the work in a sandbox) failed, 2 usage or
infrastructure error, 130 interrupted. SIGTERM is turned into the same interruption as Ctrl-C so
that every container the harness started is removed on the way out.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from harness.errors import HarnessError

EPILOG = """examples:
  aecc doctor                         check engine, runtimes, GPUs, disk, images
  aecc validate my.zip                will this ZIP pass and run on a T4?
  aecc images build                   build (or find cached) base -> torch -> runtime
  aecc images list
  aecc sandbox run --image runtime -- python -m checker.probe
  aecc cleanup                        remove containers a killed harness left behind
"""


def _console() -> Any:
    from rich.console import Console

    import shutil

    # Off a terminal rich would wrap tables at 80 columns; logs and CI are wider than that.
    return Console(stderr=True, width=None if sys.stderr.isatty() else max(shutil.get_terminal_size().columns, 160))


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness import doctor

    profile = args.profile or doctor.default_profile_for_host()
    report = doctor.run_doctor(profile)
    if args.json:
        _print_json(report.to_dict())
    else:
        doctor.render(report, _console())
    return 0 if report.ok else 2


def _build_options(args: argparse.Namespace) -> Any:
    from harness.images import BuildOptions

    return BuildOptions.from_environment(
        ca_bundle=Path(args.ca_bundle) if getattr(args, "ca_bundle", None) else None,
        pip_index_url=getattr(args, "pip_index_url", None),
        pip_extra_index_urls=tuple(args.pip_extra_index_url) if getattr(args, "pip_extra_index_url", None) else None,
        pip_trusted_hosts=tuple(args.pip_trusted_host) if getattr(args, "pip_trusted_host", None) else None,
        base_source=getattr(args, "base_source", None),
        debian_mirror=getattr(args, "debian_mirror", None),
        force=getattr(args, "force", False) or None,
    )


def cmd_images_build(args: argparse.Namespace) -> int:
    from harness import engine, images

    console = _console()
    client = engine.connect()
    layer = images.named_layer(args.target)
    results = images.build(client, layer, _build_options(args), log=lambda m: console.print(f"[dim]{m}[/]"))
    if args.json:
        _print_json([r.to_dict() for r in results])
    else:
        for r in results:
            state = "cached" if r.cached else f"built in {r.seconds:.0f} s"
            console.print(f"{r.layer:<16} {r.image:<48} {state}")
    return 0


def cmd_images_bootstrap(args: argparse.Namespace) -> int:
    from harness import engine, images

    console = _console()
    image = images.bootstrap_rootfs(
        engine.connect(), mirror=args.debian_mirror or images.DEFAULT_MIRROR, log=console.print
    )
    console.print(f"imported {images.ROOTFS_REPO}:{images.SUITE} ({image.short_id})")
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    from harness import engine, images

    rows = images.list_images(engine.connect())
    if args.json:
        _print_json([r.to_dict() for r in rows])
        return 0
    from rich.table import Table

    table = Table(title="aecc images")
    for column in ("layer", "reference", "id", "size", "created", "current"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.layer, r.reference, r.image_id, f"{r.size_bytes / 1e9:.2f} GB", r.created,
                      "yes" if r.current else "no")
    _console().print(table)
    return 0


def cmd_images_prune(args: argparse.Namespace) -> int:
    from harness import engine, images

    removed = images.prune(engine.connect(), everything=args.all, keep=tuple(args.keep or ()))
    for ref in removed:
        print(f"removed {ref}")
    print(f"{len(removed)} image(s) removed")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from harness import engine, runner

    removed = runner.cleanup(engine.connect(), everything=args.all)
    for name in removed:
        print(f"removed {name}")
    print(f"{len(removed)} container(s) removed")
    return 0


def _parse_mount(text: str) -> Any:
    from harness.errors import UsageError
    from harness.runner import Mount

    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise UsageError("bad --mount", expected="SRC:DST or SRC:DST:ro|rw", found=text)
    return Mount(Path(parts[0]).resolve(), parts[1], read_only=not (len(parts) == 3 and parts[2] == "rw"))


def cmd_sandbox_run(args: argparse.Namespace) -> int:
    from harness import engine, images, paths
    from harness.profiles import Stage, load_profile, parse_duration
    from harness.runner import RunSpec, run_stage

    profile = load_profile(args.profile)
    client = engine.connect()
    image = args.image
    if image in ("base", "torch", "runtime-deps", "runtime") or image.startswith("torch-"):
        image = images.require_image(client, images.named_layer(image))
    command = args.command[1:] if args.command and args.command[0] == "--" else args.command
    spec = RunSpec(
        stage=Stage(args.stage),
        image=image,
        command=tuple(command),
        mounts=tuple(_parse_mount(m) for m in args.mount or ()),
        gpu_uuid=args.gpu,
        wall_clock_s=parse_duration(args.timeout, key="--timeout") if args.timeout else None,
    )
    log_path = Path(args.log) if args.log else paths.logs() / f"sandbox-{args.stage}-{int(__import__('time').time())}.log"
    result = run_stage(client, profile, spec, log_path, on_log=None if args.quiet else sys.stderr.write)
    _print_json(result.to_dict())
    if result.outcome.is_infra_failure:
        return 2
    return 0 if result.outcome.value == "ok" else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from harness import engine, validate
    from harness.errors import InfraError

    console = _console()
    spec = validate.ValidateSpec(
        source=Path(args.submission),
        encoder=args.encoder,
        profile=args.profile or _default_profile(),
        gpu=args.gpu,
        max_seconds=args.max_seconds,
    )
    try:
        report = validate.validate(engine.connect(), spec, _build_options(args),
                                   progress=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    except InfraError as exc:
        # Still a report: CI of a template fork must see "error", not a missing file.
        report = {"schema_version": 1, "status": "error", "submission": {"source": str(spec.source)},
                  "profile": spec.profile, "resources": {}, "timings": {}, "logs": {},
                  "checks": [{"id": "infrastructure", "status": "failed", "message": exc.summary,
                              "expected": exc.expected, "found": exc.found, "fix": exc.fix}]}
    import jsonschema

    jsonschema.validate(report, validate.validation_schema())
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    if args.junit_out:
        Path(args.junit_out).write_bytes(validate.junit_xml(report))
    validate.render(report, console)
    return validate.Verdict(report["status"]).exit_code


def cmd_score(args: argparse.Namespace) -> int:
    from harness import engine, evaluate

    console = _console()
    spec = evaluate.ScoreSpec(
        source=Path(args.submission),
        data=Path(args.data),
        tasks=tuple(args.tasks),
        out=Path(args.out),
        encoder=args.encoder,
        profile=args.profile or _default_profile(),
        gpu=args.gpu,
        mode=args.mode,
        repeats=args.repeats,
        seed=args.seed,
        warm_start=not args.no_warm_start,
    )
    result = evaluate.score_submission(engine.connect(), spec, _build_options(args),
                                       progress=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    from rich.table import Table

    table = Table(title=f"aecc score: {result['submission']['encoder_class']} ({result['submission']['sha256'][:12]})")
    for column in ("task", "metric", "track A", "track B", "weight", "outcome"):
        table.add_column(column)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for t in result["tasks"]:
        table.add_row(t["task"], t["metric"] or "-", fmt(t["track_a"]), fmt(t["track_b"]), str(t["weight"] or "-"),
                      t["outcome"] + (f": {t['reason'][:60]}" if t["reason"] else ""))
    console.print(table)
    console.print(f"result: {Path(args.out) / result['submission']['sha256'] / 'result.json'}")
    return 0 if result["status"] == "complete" else 1


def _default_profile() -> str:
    from harness import doctor

    return doctor.default_profile_for_host()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aecc",
        description="Sandboxed validation and scoring for the ICME 2025 Audio Encoder Capability Challenge.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check engine, runtimes, GPUs, disk and images; print required vs found")
    p.add_argument("--profile", help="sandbox profile to check for (default: t4 with a GPU, else cpu)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_doctor)

    v = sub.add_parser("validate", help="will this ZIP be accepted and run on a T4? (intake, build, fetch, check)")
    v.add_argument("submission", help="a ZIP file or a folder")
    v.add_argument("--encoder", help="FILE.py:ClassName, when the encoder cannot be found automatically")
    v.add_argument("--profile", help="sandbox profile (default: t4 with a GPU, else cpu)")
    v.add_argument("--gpu", help="GPU UUID or index to pin (t4 profile)")
    v.add_argument("--max-seconds", type=float, default=600.0, help="time budget of the in-container checks")
    v.add_argument("--json-out", help="write the JSON report (schema: harness/schemas/validation-report.schema.json)")
    v.add_argument("--junit-out", help="write a JUnit XML report (one test case per check)")
    v.add_argument("--ca-bundle", help="PEM bundle builds trust for TLS")
    v.add_argument("--pip-index-url", help="pip index for the submission's requirements (default PyPI)")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("score", help="score one submission with X-ARES (Track A and B) on tasks, in containers")
    s.add_argument("submission", help="a ZIP file or a folder")
    s.add_argument("--data", required=True, help="X-ARES env dir: one folder per task with <split>*.tar shards")
    s.add_argument("--tasks", nargs="+", required=True, help="registry names or X-ARES task modules (*.py)")
    s.add_argument("--out", required=True, help="results go to OUT/<sha256>/result.json")
    s.add_argument("--encoder", help="FILE.py:ClassName, when it cannot be found automatically")
    s.add_argument("--profile", help="sandbox profile (default: t4 with a GPU, else cpu)")
    s.add_argument("--gpu", help="GPU UUID or index to pin (t4 profile)")
    s.add_argument("--mode", choices=("unique", "xares"), default="unique",
                   help="unique: every crop keyed uniquely (default); xares: reproduce X-ARES 0.1.3's keys and losses")
    s.add_argument("--repeats", type=int, default=1, help="Track A runs on this many derived seeds (mean, spread)")
    s.add_argument("--seed", type=int, default=0, help="base seed; per-task seeds derive from it and the submission")
    s.add_argument("--no-warm-start", action="store_true",
                   help="start prepare and score only when their inputs are ready (slower; for comparison)")
    s.set_defaults(func=cmd_score)

    images_p = sub.add_parser("images", help="build, list and prune the harness's images")
    isub = images_p.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    b = isub.add_parser("build", help="build the image layers up to a target; unchanged layers are cache hits")
    b.add_argument("--target", default="runtime", help="base, torch, torch-<version>, runtime-deps, runtime")
    b.add_argument("--base-source", choices=("auto", "pull", "bootstrap"),
                   help="where the Debian root comes from (default auto: local, then pull, then debootstrap)")
    b.add_argument("--ca-bundle", help="PEM bundle builds trust for TLS (default: AECC_CA_BUNDLE, PIP_CERT or the system's)")
    b.add_argument("--pip-index-url", help="pip index for builds (default PyPI)")
    b.add_argument("--pip-extra-index-url", action="append", help="extra pip index (repeatable)")
    b.add_argument("--pip-trusted-host", action="append", help="pip trusted host (repeatable)")
    b.add_argument("--debian-mirror", help="Debian mirror for debootstrap")
    b.add_argument("--force", action="store_true", help="rebuild every layer of the chain even if cached")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_images_build)
    bs = isub.add_parser("bootstrap", help="debootstrap a Debian root and import it (no registry needed)")
    bs.add_argument("--debian-mirror")
    bs.set_defaults(func=cmd_images_bootstrap)
    ls = isub.add_parser("list", help="list the harness's images, marking the current ones")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_images_list)
    pr = isub.add_parser("prune", help="remove images that are not the current build of a layer")
    pr.add_argument("--all", action="store_true", help="remove every harness image, current ones too")
    pr.add_argument("--keep", action="append", help="reference to keep (repeatable)")
    pr.set_defaults(func=cmd_images_prune)

    c = sub.add_parser("cleanup", help="remove containers left by a harness that was killed")
    c.add_argument("--all", action="store_true", help="also those of harness processes still running")
    c.set_defaults(func=cmd_cleanup)

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
    r.set_defaults(func=cmd_sandbox_run)
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
        _console().print(Text("error: ", style="red") + Text(exc.render()), highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        _console().print("[yellow]interrupted; containers started by this run were removed[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
