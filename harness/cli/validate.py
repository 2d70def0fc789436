"""`aecc validate SUBMISSION`: the participant's check before e-mailing a ZIP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from checker.jobs import DEFAULT_MAX_SECONDS

from harness.cli.common import (
    add_build_flags,
    build_options,
    console,
    default_profile,
    progress_printer,
)


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", help="will this ZIP be accepted and run on a T4? (intake, build, fetch, check)")
    v.add_argument("submission", help="a ZIP file or a folder")
    v.add_argument("--encoder", help="FILE.py:ClassName, when the encoder cannot be found automatically")
    v.add_argument("--profile", help="sandbox profile (default: t4 with a GPU, else cpu)")
    v.add_argument("--gpu", help="GPU UUID or index to pin (t4 profile)")
    v.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help=f"time budget of the in-container checks (default {DEFAULT_MAX_SECONDS:g} s)")
    v.add_argument("--json-out", help="write the JSON report (schema: harness/schemas/validation-report.schema.json)")
    v.add_argument("--junit-out", help="write a JUnit XML report (one test case per check)")
    v.add_argument("--strict", action="store_true",
                   help="advisories fail too (exit 1); by default only rule and scoring failures do")
    add_build_flags(v)
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.errors import InfraError
    from harness.pipelines.validate import ValidateSpec, validate
    from harness.report.console import render_validation
    from harness.report.junit import junit_xml
    from harness.results import Check, ValidationReport, Verdict
    from harness.sandbox import engine

    out = console()
    spec = ValidateSpec(source=Path(args.submission), encoder=args.encoder, profile=args.profile or default_profile(),
                        gpu=args.gpu, max_seconds=args.max_seconds, strict=args.strict)
    try:
        report = validate(engine.connect(), spec, build_options(args), progress=progress_printer(out))
    except InfraError as exc:
        # Still a report: CI of a template fork must see "error", not a missing file.
        report = ValidationReport(Verdict.ERROR, {"source": str(spec.source)}, spec.profile,
                                  (Check.from_error("infrastructure", exc),), strict=spec.strict)
    data = report.to_dict()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(data, indent=2) + "\n")
    if args.junit_out:
        Path(args.junit_out).write_bytes(junit_xml(data))
    render_validation(data, out)
    return report.exit_code
