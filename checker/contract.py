"""Check one encoder against the X-ARES contract, inside its container, and write a typed report.

    python -P -m checker.contract --submission DIR --encoder FILE.py:Class --report OUT.json
        [--phase check|fetch] [--max-seconds 600] [--device auto|cpu|cuda]
        [--then-encode GO.json --max-wait S]

Run it with `-P` (or from a working directory outside the submission): `python -m` otherwise puts
the working directory first on sys.path, and a submission's own `checker.py` or `checker/` would
be imported instead of this package and could write any report it likes.

The contract (X-ARES `audio_encoder_checker.py`, the challenge rules): a `torch.nn.Module` whose
class name ends in `Encoder`, with `sampling_rate` (int Hz), `output_dim` (int) and
`hop_size_in_ms`, whose `forward(audio[B, T])` returns a float tensor `[B, T', D]`, `D ==
output_dim`, for inputs of any length up to 10 minutes. X-ARES 0.1.3 itself only tries
`torch.randn(2, 50000)`; this checker tries what the evaluation will actually send.

Check ids are stable (CI, the host and participants key on them); their levels (rule, scoring,
advice: what a failure costs) are in `checker.jobs.CHECK_LEVELS`. In report order:

    import                  the encoder's file imports (by module name, as X-ARES does)
    class_found             the named attribute exists in that module and is a class
    class_name              the class name ends in "Encoder" (X-ARES refuses others)
    constructible           the class constructs with no arguments
    nn_module               the instance is a torch.nn.Module
    attr_sampling_rate      int Hz within 8000..48000 (warning for uncommon rates)
    attr_output_dim         positive int
    attr_hop_size           hop_size_in_ms is a number within 1..1000 ms
    forward_basic           eval() + forward(torch.randn(2, 50000)), X-ARES's own check call, under
                            torch.inference_mode, after a timed warm-up on 0.5 s (checker.watchdog)
    output_type             forward returns a torch.Tensor (all X-ARES checks of the type)
    output_dtype            the tensor has a floating dtype (fp16/bf16: warning); X-ARES accepts any
    output_rank             the output is 3-D [B, T', D]
    output_batch            the output keeps the batch size B
    output_dim_match        D == output_dim
    forward_lengths         forward runs on 0.5 s, 1 s, 3 s, 10 s and 60 s inputs
    long_input              forward runs on a 600 s input (X-ARES promises up to 10 min);
                            skipped, with the reason, when --max-seconds would be exceeded
    forward_timeout         every forward call returned within its budget (checker.watchdog); a
                            call past it stops the process, failing this and the check it was in
    output_frames_positive  T' > 0 at every length tried
    frames_track_hop        |T' - duration/hop| <= max(2, 5 %) at every length that gave frames
    finite                  no NaN/Inf in any output
    deterministic           two eval forwards of the same input agree
    batch_independence      a clip's output does not change when another clip shares its batch
    padding_sensitivity     (warning only) frames covering a clip change when it is zero-padded
    cuda                    moving to CUDA and forward work (skipped where no GPU is visible)
    memory                  peak RSS / CUDA memory of this process (advisory; the host measures)
    throughput              seconds of audio per wall second on this device (report only)
    t4_pitfalls             static scan for bf16, FlashAttention-2, TF32, device indices (warning)

A check whose prerequisite did not pass is `skipped` with the reason, so a report always lists
every id of its phase. An exception raised by submission code is a `failed` check with the
traceback tail in `details`; only the checker's own failure makes the report `error`.

`--phase fetch` (network on, weights cache mounted) only imports and constructs the encoder, so
that weights it downloads are cached for the network-less stages.

Layout: `checker.common` holds the ids, prerequisites and bookkeeping, `checker.forward_checks` the
checks that run forward, `checker.pitfalls` the static scan, `checker.report` the report types;
this module loads the encoder, orders the checks and is the command line.

`--then-encode GO.json` (the check phase of `aecc score`): once the report is written, the agent
writes `<report>.done` beside it and waits for the host's decision in GO.json, a file the host alone
writes (`checker.gate`'s go file): `{"cancel": true}` ends the run; `{"argv": [...]}` runs the encode
stage (`checker.encode.main`) in this process, so the torch import and the submission's own imports
are paid once. The encoder is constructed again for the encode, with torch's generator back at this
process's own start (the checks seed it): the checks ran forward passes on their own instance and put
it in eval mode (which changes a train-mode BatchNorm's or Dropout's output, and X-ARES never calls
`.eval()`), so reusing it would give other embeddings than X-ARES computes.

Exit status: 0 when a report was written (whatever it says), 3 when none could be written; with
`--then-encode`, the encode stage's status after a go, 3 when no decision came within `--max-wait`.
"""

from __future__ import annotations

import argparse
import importlib
import numbers
import os
import platform
import sys
import time
import traceback
from typing import Any

from checker import pitfalls
from checker.common import (
    CHECK_IDS,
    COMMON_RATES,
    DEPENDS,
    REPORT_NAME_CLASS_HINTS,
    CheckerUsageError,
    F,
    Options,
    P,
    SubmissionCodeError,
    W,
    call_submission,
    cpu_budget,
    describe_value,
    memory_limit_bytes,
    parse_encoder_spec,
    seed_everything,
    setup,
)
from checker.forward_checks import ForwardChecks
from checker.jobs import ATTRIBUTE_RANGES, DEFAULT_MAX_SECONDS
from checker.report import CheckReport, CheckResult, Phase, clip_text

__all__ = ["CHECK_IDS", "DEPENDS", "Checker", "main"]


class Checker(ForwardChecks):
    """Runs the checks of one phase, in dependency order, into `self.report`."""

    # --- phases -------------------------------------------------------------------------

    def run(self) -> CheckReport:
        import torch

        self.report.environment = self.environment(torch)
        self.save()
        self.check_import()
        self.check_class()
        self.check_constructible()
        self.check_nn_module()
        self.check_attributes()
        if self.o.phase is Phase.FETCH:
            # Fetch constructs the encoder once, with network, so that its downloads are cached;
            # the attributes read here are what the trusted stages need (prepare's sample rate).
            return self.finish()
        self.check_cuda(torch)
        self.check_forward_basic(torch)
        self.check_outputs(torch)
        self.check_lengths(torch)
        self.check_frames()
        self.check_deterministic(torch)
        self.check_batch_independence(torch)
        self.check_throughput(torch)
        self.check_t4_pitfalls()
        self.check_finite(torch)
        self.check_memory(torch)
        # Last among the forwards: if a 10-minute input gets the process killed, every other
        # result is already on disk and the report's in_progress says "long_input".
        self.check_long_input(torch)
        self.check_frames()
        self.check_finite(torch)
        self.check_memory(torch)
        self.check_forward_timeout()
        return self.finish()

    def finish(self) -> CheckReport:
        self.report.in_progress = None
        self.report.complete = True
        self.save()
        return self.report

    def environment(self, torch: Any) -> dict:
        from importlib import metadata

        def version(name: str) -> str | None:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return None

        cuda_available = torch.cuda.is_available()
        env = {
            "python": platform.python_version(),
            "platform": platform.machine(),
            "torch": torch.__version__,
            "torchaudio": version("torchaudio"),
            "xares": version("xares"),
            "numpy": version("numpy"),
            "cuda_build": torch.version.cuda,
            "cuda_available": cuda_available,
            "threads": torch.get_num_threads(),
            "cpus": cpu_budget(),
            "memory_limit_bytes": memory_limit_bytes(),
            "device_requested": self.o.device,
            "gpus": [],
        }
        if cuda_available:
            for i in range(torch.cuda.device_count()):
                major, minor = torch.cuda.get_device_capability(i)
                env["gpus"].append({"name": torch.cuda.get_device_name(i), "capability": f"{major}.{minor}"})
        if self.o.device == "cuda" and not cuda_available:
            raise CheckerUsageError("--device cuda was requested but torch.cuda.is_available() is False here")
        return env

    # --- loading ------------------------------------------------------------------------

    def check_import(self) -> None:
        root = os.path.realpath(self.o.submission)
        rel = self.o.encoder_file
        target = os.path.realpath(os.path.join(root, rel))
        fix_path = "name the encoder's file relative to the submission root, e.g. encoder.py:MyEncoder"
        if os.path.isabs(rel) or os.path.commonpath([root, target]) != root:
            self.add("import", F, "the encoder file is outside the submission", expected="a path inside the submission",
                     found=rel, fix=fix_path)
            return
        if not os.path.isfile(target):
            present = pitfalls.python_files(root)[:20]
            self.add("import", F, f"the encoder file {rel} is not in the submission", expected=rel, found="absent",
                     fix=fix_path, details={"python_files": present})
            return
        module_name = rel[: -len(".py")].replace(os.sep, ".")
        parts = module_name.split(".")
        if not all(p.isidentifier() for p in parts):
            self.add("import", F, f"{rel} cannot be imported by module name (X-ARES imports it that way)",
                     expected="a file name that is a Python identifier, e.g. my_encoder.py", found=rel,
                     fix="rename the file (no dashes, spaces or leading digits)")
            return
        existing = sys.modules.get(parts[0])
        if existing is not None:
            where = getattr(existing, "__file__", None) or "built in"
            if not os.path.realpath(str(where)).startswith(root + os.sep):
                self.add("import", F, f"module name {parts[0]!r} shadows an installed module ({where})",
                         expected="a module name that no installed package uses", found=parts[0],
                         fix=f"rename {rel} (X-ARES would import the installed module instead)")
                return
        # As X-ARES: the submission's root on sys.path, the module imported by name, and the
        # working directory at the root so that relative weight paths resolve.
        sys.path.insert(0, root)
        os.chdir(root)
        importlib.invalidate_caches()
        self.begin("import")
        started = time.monotonic()
        try:
            self.module = call_submission("import", importlib.import_module, module_name)
        except SubmissionCodeError as err:
            self.fail_submission("import", err, f"importing {module_name} raised {type(err.exc).__name__}",
                                 expected=f"`import {module_name}` succeeds",
                                 fix="install what it needs via requirements.txt, or fix the error in the traceback")
            return
        self.report.timings["import_s"] = round(time.monotonic() - started, 3)
        self.add("import", P, f"imported {module_name}", details={"module": module_name})

    def check_class(self) -> None:
        if self.blocked("class_found"):
            self.blocked("class_name")
            return
        name = self.o.encoder_class
        try:
            obj = call_submission("class lookup", getattr, self.module, name)
        except SubmissionCodeError as err:
            hints = [n for n in dir(self.module) if n.endswith("Encoder")][:REPORT_NAME_CLASS_HINTS]
            self.fail_submission("class_found", err, f"{self.o.encoder_file} has no attribute {name!r}",
                                 expected=f"a class named {name}", found="absent",
                                 fix="point the manifest at the encoder class" + (f"; did you mean: {', '.join(hints)}?" if hints else ""),
                                 details={"candidates": hints})
            self.blocked("class_name")
            return
        if not isinstance(obj, type):
            self.add("class_found", F, f"{name} is not a class", expected="a class", found=describe_value(obj),
                     fix="point the manifest at the encoder class itself, not an instance or a factory")
            self.blocked("class_name")
            return
        self.cls = obj
        self.add("class_found", P, f"found class {obj.__qualname__}")
        if obj.__name__.endswith("Encoder"):
            self.add("class_name", P, f"class name {obj.__name__} ends in 'Encoder'")
        else:
            self.add("class_name", F, "X-ARES only accepts encoder classes whose name ends in 'Encoder'",
                     expected="a class name ending in 'Encoder'", found=obj.__name__,
                     fix=f"rename the class, e.g. to {obj.__name__}Encoder")

    def check_constructible(self) -> None:
        if self.blocked("constructible"):
            return
        self.begin("constructible")
        seed_everything()
        started = time.monotonic()
        try:
            self.encoder = call_submission("constructor", self.cls)
        except SubmissionCodeError as err:
            self.fail_submission("constructible", err, f"{self.cls.__name__}() raised {type(err.exc).__name__}",
                                 expected=f"{self.cls.__name__}() builds the encoder with no arguments",
                                 fix="give every constructor argument a default and bundle or download the weights")
            return
        self.report.timings["construct_s"] = round(time.monotonic() - started, 3)
        self.report.attributes["class_name"] = type(self.encoder).__name__
        self.add("constructible", P, f"{self.cls.__name__}() constructed")

    def check_nn_module(self) -> None:
        if self.blocked("nn_module"):
            return
        import torch

        if isinstance(self.encoder, torch.nn.Module):
            n = sum(p.numel() for p in self.encoder.parameters())
            self.add("nn_module", P, "the encoder is a torch.nn.Module", details={"parameters": n})
        else:
            mro = [c.__name__ for c in type(self.encoder).__mro__]
            self.add("nn_module", F, "X-ARES requires the encoder to be a torch.nn.Module",
                     expected="an instance of torch.nn.Module", found=" -> ".join(mro),
                     fix="subclass torch.nn.Module and call super().__init__() first")

    def _attr(self, check_id: str, name: str) -> tuple[bool, Any]:
        try:
            if not call_submission(name, hasattr, self.encoder, name):
                self.add(check_id, F, f"the encoder has no {name} attribute", expected=f"self.{name} set in __init__",
                         found="absent", fix=f"set self.{name} in __init__")
                return False, None
            return True, call_submission(name, getattr, self.encoder, name)
        except SubmissionCodeError as err:
            self.fail_submission(check_id, err, f"reading {name} raised {type(err.exc).__name__}")
            return False, None

    def check_attributes(self) -> None:
        for check_id in ("attr_sampling_rate", "attr_output_dim", "attr_hop_size"):
            if self.blocked(check_id):
                return self._block_rest(("attr_sampling_rate", "attr_output_dim", "attr_hop_size"))
        ok, sr = self._attr("attr_sampling_rate", "sampling_rate")
        if ok:
            allowed = ATTRIBUTE_RANGES["sampling_rate"]
            expected = f"an int number of Hz within {allowed.describe()}, e.g. 16000"
            if isinstance(sr, bool) or not isinstance(sr, numbers.Real):
                self.add("attr_sampling_rate", F, "sampling_rate is not a number", expected=expected,
                         found=describe_value(sr),
                         fix="set self.sampling_rate = 16000 (or the rate the model was trained at)")
            elif not isinstance(sr, numbers.Integral) and not float(sr).is_integer():
                self.add("attr_sampling_rate", F, "sampling_rate is not a whole number of Hz", expected=expected,
                         found=describe_value(sr), fix="set sampling_rate to an int")
            elif sr not in allowed:
                self.add("attr_sampling_rate", F, "sampling_rate is outside the plausible range", expected=expected,
                         found=describe_value(sr), fix="sampling_rate is in Hz (16000), not kHz (16)")
            else:
                self.sr = int(sr)
                notes = []
                if not isinstance(sr, numbers.Integral):
                    notes.append("it is a float; X-ARES resamples to int rates, so make it an int")
                if self.sr not in COMMON_RATES:
                    notes.append(f"{self.sr} Hz is not a common rate ({', '.join(map(str, COMMON_RATES))})")
                status = W if notes else P
                self.report.attributes["sampling_rate"] = self.sr
                self.add("attr_sampling_rate", status, "; ".join(notes) or f"sampling_rate = {self.sr} Hz",
                         expected=expected if notes else None, found=describe_value(sr) if notes else None,
                         details={"sampling_rate": self.sr})
        ok, dim = self._attr("attr_output_dim", "output_dim")
        if ok:
            allowed = ATTRIBUTE_RANGES["output_dim"]
            if isinstance(dim, numbers.Integral) and not isinstance(dim, bool) and dim in allowed:
                self.add("attr_output_dim", P, f"output_dim = {int(dim)}", details={"output_dim": int(dim)})
                self.report.attributes["output_dim"] = int(dim)
            else:
                self.add("attr_output_dim", F, "output_dim must be a positive int (the size D of each frame embedding)",
                         expected=f"an int within {allowed.describe()}, e.g. 768", found=describe_value(dim),
                         fix="set self.output_dim to D")
        ok, hop = self._attr("attr_hop_size", "hop_size_in_ms")
        if ok:
            allowed = ATTRIBUTE_RANGES["hop_size_in_ms"]
            if hop in allowed:
                self.add("attr_hop_size", P, f"hop_size_in_ms = {float(hop):g}", details={"hop_size_in_ms": float(hop)})
                self.report.attributes["hop_size_in_ms"] = float(hop)
            else:
                self.add("attr_hop_size", F, "hop_size_in_ms must be the time between output frames in milliseconds",
                         expected=f"a number within {allowed.describe()}, e.g. 20 or 40", found=describe_value(hop),
                         fix="set self.hop_size_in_ms to the frame hop in ms (seconds * 1000)")

    def check_t4_pitfalls(self) -> None:
        result = pitfalls.scan(os.path.realpath(self.o.submission))
        found = result["findings"]
        if found:
            kinds = sorted({f["pitfall"] for f in found})
            first = found[0]
            self.add("t4_pitfalls", W, f"the code mentions things that fail or slow down on a T4 (sm_75): "
                     f"{', '.join(kinds)}; e.g. {first['file']}:{first['line']}: {first['reason']}",
                     fix=first["fix"], details=result)
        else:
            self.add("t4_pitfalls", P, f"no T4 pitfalls found in {result['files_scanned']} Python files", details=result)


# --- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m checker.contract",
        description="Check an audio encoder against the X-ARES contract and write a JSON report.",
        epilog="example: python -m checker.contract --submission /submission --encoder encoder.py:MyEncoder "
        "--report /out/report.json",
        exit_on_error=False,
    )
    parser.add_argument("--submission", required=True, help="the submission's root folder")
    parser.add_argument("--encoder", required=True, help="FILE.py:ClassName, FILE relative to --submission")
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--phase", choices=[p.value for p in Phase], default=Phase.CHECK.value)
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help=f"time budget; lengths that would exceed it are skipped (default {DEFAULT_MAX_SECONDS:g})")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--then-encode", metavar="GO_FILE",
                        help="after the report, wait for the host's go file and run the encode stage in this process")
    parser.add_argument("--max-wait", type=float, default=600.0,
                        help="seconds to wait for the go file at most (with --then-encode)")
    return parser


def _report_path_from(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--report" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--report="):
            return arg.split("=", 1)[1]
    return None


def _print_summary(report: CheckReport, out: Any = sys.stderr) -> None:
    for c in report.checks:
        if c.status is not P:
            print(f"{c.status.value.upper():8} {c.id}: {c.message}", file=out)
    print(f"report: {report.status.value} {report.summary()}", file=out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    report_path = _report_path_from(argv)
    report = CheckReport(encoder_file="", encoder_class="")
    args = None
    fresh_rng = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except argparse.ArgumentError as exc:
            raise CheckerUsageError(str(exc)) from None
        report_path = os.path.abspath(args.report)  # before the chdir into the submission
        file, cls = parse_encoder_spec(args.encoder)
        report.encoder_file, report.encoder_class, report.phase = file, cls, Phase(args.phase)
        options = Options(submission=args.submission, encoder_file=file, encoder_class=cls, report_path=report_path,
                          phase=Phase(args.phase), max_seconds=args.max_seconds, device=args.device)
        if not os.path.isdir(options.submission):
            raise CheckerUsageError(f"--submission {options.submission} is not a folder")
        if args.then_encode:
            fresh_rng = _fresh_generator_state()
        setup()
        checker = Checker(options)
        report = checker.report
        checker.run()
    except SubmissionCodeError as err:  # a submission call escaped a check: still the submission's fault
        report.add(CheckResult(report.in_progress or "import", F, f"submission code raised: {err.summary}",
                               details=err.details()))
        report.complete = True
    except BaseException as exc:  # the checker's own failure (or a usage error): never the submission's
        report.checks = [c for c in report.checks if not c.details.get("placeholder")]
        if isinstance(exc, KeyboardInterrupt):
            report.error = "interrupted"
        else:
            report.error = clip_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        report.complete = True
    if report_path is None:
        print(f"checker: cannot write a report: no --report given\n{report.error or ''}", file=sys.stderr)
        return 3
    try:
        report.in_progress = None
        report.write(report_path)
    except Exception as exc:
        print(f"checker: cannot write the report to {report_path}: {exc}", file=sys.stderr)
        return 3
    _print_summary(report)
    if args is not None and args.then_encode:
        return then_encode(report_path, args.then_encode, args.max_wait, fresh_rng)
    return 0




def _fresh_generator_state() -> Any:
    """torch's CPU generator and seed as this process started with them (torch seeds them from the OS,
    as in any fresh process), before `setup()` seeds them for the checks."""
    import torch

    return torch.random.get_rng_state(), torch.initial_seed()


def _give_back_memory() -> None:
    """Return what the checks freed (the 10-minute input's buffers) to the kernel before encoding:
    the encode must not start from the checks' high-water mark, or an encoder that fits the memory
    cap in either phase alone could pass it here. Best effort: glibc's `malloc_trim` where it exists."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def then_encode(report_path: str, go_file: str, max_wait_s: float, fresh_rng: Any) -> int:
    """Say the report is final, wait for the host's decision, and encode in this process on a go."""
    from pathlib import Path

    from checker import encode
    from checker.gate import EXIT_NO_GO, wait_for_go
    from checker.jobs import REPORT_FINAL_SUFFIX, Cancel

    Path(report_path + REPORT_FINAL_SUFFIX).write_text("")
    print("aecc-check: report written; waiting for the host's decision", flush=True)
    go = wait_for_go(Path(go_file), max_wait_s)
    if go is None:
        print(f"aecc-check: no decision at {go_file} within {max_wait_s:g} s", file=sys.stderr, flush=True)
        return EXIT_NO_GO
    if isinstance(go, Cancel):
        print("aecc-check: no encode (the host's decision)", flush=True)
        return 0
    import torch

    _give_back_memory()
    if fresh_rng is not None:
        # Built again as in a fresh process: X-ARES constructs it before any seeding.
        state, seed = fresh_rng
        torch.random.set_rng_state(state)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(seed)
    print("aecc-check: encoding in the same process (the host's go)", flush=True)
    return encode.main(list(go.argv))


if __name__ == "__main__":
    sys.exit(main())
