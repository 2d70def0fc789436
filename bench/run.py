"""`make bench`: the harness's speed and memory, side by side with bare X-ARES, in one run.

Every figure is either a ratio against a baseline measured in the same run on the same machine
(harness and baseline runs are interleaved, repeat by repeat, so background load hits both), or a
count that does not depend on machine speed (bytes, RSS). Seconds are recorded too, but compare
seconds only between runs on the same machine (bench/compare.py warns when the machines differ).

Groups (`--only` takes a comma-separated subset):

  validate-warm  `aecc validate examples/good_encoder`, images and its submission image cached
  validate-cold  the same on a throwaway copy (unique comment line: new sha, new submission image):
                 the submission build is cold, only base/torch layers cached
  images-noop    `aecc images build`, every layer cached
  score          per repeat: X-ARES run directly (`python -m xares.run ... --max-jobs 0`, plain
                 `docker run` of the runtime image, a fresh copy of the demo env), a first
                 submission (fresh AECC_HOME: prepare cache empty; new sha: build runs) and a second
                 one at the same sample rate (same AECC_HOME: prepare cached); orchestrator peak RSS
  parallel       K throwaway submissions scored by N concurrent `aecc score` processes, for each N
                 in --parallel, after a warm-up that fills the prepare cache: throughput and speedup
  batch          K throwaway submissions: one `aecc score` batch, K sequential `aecc score` runs and K
                 bare X-ARES runs, each from a fresh AECC_HOME (ratios batch/sequential, batch/bare)
  rss20          peak RSS of one `aecc score` process with 20 queued submissions (one tiny task)
  large          the larger suite (bench/large_suite.py, about 37 min of audio): bare X-ARES, a first
                 and a second submission, and a first after `aecc data prepare`
  batch-large    K throwaway submissions (--batch-k) in one `aecc score` on the larger suite against K
                 bare X-ARES runs on it (about 3 min a repeat on 2 cores)
  hours          the 3-hour suite (bench/large_suite.py `hours`, 9000 clips): bare X-ARES, a first and
                 a second submission (about 4 min a repeat on 2 cores); with `large`, each run's
                 seconds per audio-hour and the two-point fit time = fixed + slope x audio-hours
  repeats        the score stage with 1 vs --repeats-n Track A repeats on the larger suite, and
                 Track A's spread over 10 seeds per task on the demo and the larger suite: how many
                 repeats bring the standard error under 0.005
  lock           the CREPE example (requirements: torchcrepe and its dependencies): a cold submission
                 build, then its lock-based rebuild after the image is removed
  sizes          image sizes (base, torch, runtime-deps, runtime, a submission) from the engine
  bootstrap      `aecc leaderboard`'s paired bootstrap at the organizers' scale (30 submissions x 27 tasks x
                 real test-set sizes, 1000 resamples; Track B and Track A with 3 repeats), on generated
                 per-clip data (bench/bootstrap.py; no container)

Results: a rich table on stdout and `bench/results/<UTC timestamp>.json` (schema_version first).
The bench's own throwaway submission images (aecc/submission:<sha12 of a throwaway>-...) are
removed at the end unless --keep-images; nothing else is removed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The entry point: arguments, which groups run in which order, the JSON. What it calls lives by job:
# bench/sampling.py (measuring processes), bench/scenarios.py with bench/beyond_demo.py and
# bench/inventory.py (the groups), bench/targets.py (metrics, targets, notes), bench/render.py (table).
from bench.render import render  # noqa: E402
from bench.sampling import START, Recorder, RssSampler, env_with, interruptible, progress, timed_run  # noqa: E402
from bench.scenarios import AECC, DEMO_TASKS, EXAMPLE, Bench  # noqa: E402
from bench.targets import (  # noqa: E402
    MISS_SOURCES,
    TARGETS,
    define_metrics,
    evaluate_targets,
    explain_misses,
    parallel_note,
    per_audio_hour,
    per_hour_note,
    target_metrics,
)

__all__ = ["AECC", "ALIASES", "DEMO_TASKS", "EXAMPLE", "GROUPS", "MISS_SOURCES", "RESULTS", "SCHEMA_VERSION", "START",
           "TARGETS", "Bench", "Recorder", "RssSampler", "env_with", "evaluate_targets", "explain_misses", "main",
           "parallel_note", "parse_args", "per_audio_hour", "per_hour_note", "progress", "render", "target_metrics",
           "timed_run"]

SCHEMA_VERSION = 1
RESULTS = REPO / "bench" / "results"
# Beside the Makefile's demo env (DEMO_ENV): kept between runs, as the 3-hour suite takes a minute
# and more to write and 0.4 GB to hold.
SUITES_DIR = Path.home() / ".aecc" / "bench-suites"
GROUPS = ("validate-warm", "validate-cold", "images-noop", "score", "parallel", "batch", "rss20", "large",
          "batch-large", "hours", "repeats", "lock", "asr", "sizes", "bootstrap")
ALIASES = {"validate": ("validate-warm", "validate-cold"), "images": ("images-noop",), "all": GROUPS}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--demo-env", required=True, help="the demo suite's data (`python -m harness.demodata DIR`)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every measurement (default 3)")
    parser.add_argument("--k", type=int, default=4, help="submissions per parallel measurement (default 4)")
    parser.add_argument("--batch-k", type=int, default=6, help="submissions per batch measurement (default 6)")
    parser.add_argument("--repeats-n", type=int, default=5, help="Track A repeats to price against 1 (default 5)")
    parser.add_argument("--parallel", default="1,2", help="concurrent `aecc score` processes to try (default 1,2)")
    parser.add_argument("--quick", action="store_true", help="a fast check: --repeats 1, --k 2")
    parser.add_argument("--only", help=f"comma-separated groups: {', '.join(GROUPS)} (aliases: validate, images)")
    parser.add_argument("--work", help="scratch folder (default: a new one under /tmp, removed at the end)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder (logs, results)")
    parser.add_argument("--keep-images", action="store_true", help="keep the throwaway submissions' images")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the JSON goes (default bench/results)")
    parser.add_argument("--suites-dir", default=str(SUITES_DIR),
                        help=f"where the generated suites (large, hours) are kept between runs (default {SUITES_DIR})")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.k = 1, 2
    if args.repeats < 1 or args.k < 1:
        parser.error("--repeats and --k must be at least 1")
    try:
        args.parallel = sorted({int(n) for n in args.parallel.split(",")})
    except ValueError:
        parser.error("--parallel takes comma-separated integers, e.g. 1,2")
    if min(args.parallel) < 1:
        parser.error("--parallel values must be at least 1")
    groups: list[str] = []
    for name in (args.only.split(",") if args.only else ["all"]):
        name = name.strip()
        if name in ALIASES:
            groups += ALIASES[name]
        elif name in GROUPS:
            groups.append(name)
        else:
            parser.error(f"unknown group {name!r}; choose from {', '.join(GROUPS)}")
    args.groups = [g for g in GROUPS if g in groups]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (Path(args.demo_env) / "tiny_tones").is_dir():
        print(f"error: {args.demo_env} holds no demo suite; run `python -m harness.demodata {args.demo_env}` "
              "(or `make demo-data`)", file=sys.stderr)
        return 2
    created = dt.datetime.now(dt.timezone.utc)
    bench = Bench(args)
    rec = bench.rec
    progress(f"groups {', '.join(args.groups)}; repeats {args.repeats}; K {args.k}; N {args.parallel}; "
             f"work {bench.work}")
    machine = bench.machine()
    versions = bench.versions()
    define_metrics(rec, args)
    failed = False

    def guarded(group: str, fn: Callable[..., None], *fn_args: Any) -> None:
        # A group that breaks is an error in the JSON, never the end of the bench: the other
        # groups' numbers (maybe an hour of them) are written all the same.
        try:
            fn(*fn_args)
        except Exception as exc:  # noqa: BLE001 (recorded with its traceback)
            import traceback

            rec.error(group, f"{type(exc).__name__}: {exc}", traceback.format_exc()[-4000:])
            progress(f"{group}: failed: {type(exc).__name__}: {exc} (recorded; the bench goes on)")

    try:
        with interruptible():
            validate_home = bench.fresh_home("validate")
            if "validate-warm" in args.groups:
                progress("validate warm: warm-up run (untimed) so the example's image and caches exist")
                bench.validate_once(EXAMPLE, "validate-warmup", validate_home)
            parallel_home = None
            if "parallel" in args.groups:
                parallel_home = bench.fresh_home("parallel")
                bench.parallel_warmup(parallel_home)
            for r in range(args.repeats):
                progress(f"--- repeat {r + 1}/{args.repeats}")
                if "validate-warm" in args.groups:
                    guarded("validate-warm", bench.validate_warm, r, validate_home)
                if "validate-cold" in args.groups:
                    guarded("validate-cold", bench.validate_cold, r, validate_home)
                if "images-noop" in args.groups:
                    guarded("images-noop", bench.images_noop, r, validate_home)
                if "score" in args.groups:
                    guarded("score", bench.score, r)
                if "parallel" in args.groups:
                    guarded("parallel", bench.parallel, r, parallel_home)
                if "batch" in args.groups:
                    guarded("batch", bench.batch, r)
                if "large" in args.groups:
                    guarded("large", bench.large, r)
                if "batch-large" in args.groups:
                    guarded("batch-large", bench.batch_large, r)
                if "hours" in args.groups:
                    guarded("hours", bench.hours, r)
            if "rss20" in args.groups:
                guarded("rss20", bench.rss20)
            if "repeats" in args.groups:
                guarded("repeats", bench.repeats)
            if "lock" in args.groups:
                for r in range(args.repeats):
                    guarded("lock", bench.lock, r)
            if "asr" in args.groups:
                guarded("asr", bench.asr)
            if "sizes" in args.groups:
                guarded("sizes", bench.sizes)
            if "bootstrap" in args.groups:
                guarded("bootstrap", bench.bootstrap_cost)
    except KeyboardInterrupt:
        failed = True
        rec.notes.append("interrupted: partial results")
    finally:
        if not args.keep_images:
            removed = bench.remove_throwaway_images()
            progress(f"removed {len(removed)} throwaway submission image(s)")
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    for name, values in per_audio_hour(rec.summarised()).items():
        for value in values:
            rec.add(name, value)
    metrics = {k: v for k, v in rec.summarised().items() if v["n"] or k in target_metrics()}
    if {"large", "hours"} & set(args.groups):
        rec.notes.append(per_hour_note(metrics))
    if "parallel" in args.groups:
        rec.notes.append(parallel_note(metrics, args.parallel, machine["cpus"]))
    if "score" in args.groups:
        rec.notes.append("X-ARES baseline runs with --max-jobs 0 (every stage in one process): with its default "
                         "--max-jobs 1, xares.run 0.1.3 crashes on a CPU-only host in stage 1 (`i % num_gpus` with "
                         "torch.cuda.device_count() == 0: ZeroDivisionError).")
    targets = evaluate_targets(metrics, rec.notes)
    rec.notes.extend(explain_misses(metrics, targets))
    doc = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "args": {"repeats": args.repeats, "k": args.k, "batch_k": args.batch_k, "parallel": args.parallel,
                 "quick": args.quick, "groups": args.groups, "demo_env": str(Path(args.demo_env).resolve()),
                 "suites_dir": str(Path(args.suites_dir).resolve()), "tasks": [t.name for t in bench.tasks]},
        "machine": machine,
        "versions": versions,
        "metrics": metrics,
        "targets": targets,
        "notes": rec.notes,
        "errors": rec.errors,
        "raw": rec.raw,
        "wall_s": round(time.monotonic() - START, 1),
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{created.strftime('%Y%m%dT%H%M%SZ')}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    render(doc)
    print(f"results: {path}")
    if args.keep_work or rec.errors:
        print(f"scratch kept (logs): {bench.work}")
    else:
        shutil.rmtree(bench.work, ignore_errors=True)
    return 130 if failed else (1 if rec.errors else 0)


if __name__ == "__main__":
    sys.exit(main())
