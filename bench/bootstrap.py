"""The bootstrap's cost at the organizers' scale (issue 23): `aecc leaderboard`'s paired bootstrap over
30 submissions x 27 tasks at the real test-set sizes, on generated per-clip data.

Test-set sizes are the registry's eval_weight (the paper's n_i: the test clips of each task), the
metrics the registry's (accuracy, mAP over 200 classes, segment F1 over 10 classes, R@1 with five
captions per clip, WER), so `checker.clips.recompute` does the work it does on real results. What is
timed is what `build_board` adds with the bootstrap on: resampling every task and row, the
significance-aware tie rule and the rank distributions (`bootstrap.resample_track`,
`formula.rank_rows`, `TrackResamples.rank_stats`); generating the data is not timed.

Runs as the bench's `bootstrap` group (`make bench BENCH_ARGS="--only bootstrap"`; needs no engine
work of its own) and alone: `python bench/bootstrap.py [--submissions 30 --tasks 27 --resamples 1000]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: classes per metric where the per-clip arrays are [n, C] (FSD50K has 200 labels, DESED 10, MAESTRO 17)
CLASSES = {"mAP": 200, "segmentf1_macro": 10, "segmentf1_micro": 17}


def _arrays(metric: str, n: int, quality: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-clip data of a submission of `quality` (0..1) for a task of `metric` with `n` clips."""
    if metric == "accuracy":
        target = rng.integers(0, 10, n)
        right = rng.random(n) < quality
        return {"pred": np.where(right, target, (target + 1) % 10), "target": target}
    if metric == "mAP":
        target = (rng.random((n, CLASSES[metric])) < 0.02).astype(np.uint8)
        scores = (rng.random(target.shape) + quality * target).astype(np.float32)
        return {"scores": scores, "target": target}
    if metric.startswith("segmentf1"):
        shape = (n, CLASSES[metric])
        tp = rng.binomial(8, quality, shape)
        return {"tp": tp, "fp": rng.binomial(8, 1 - quality, shape), "fn": 8 - tp}
    if metric == "recallatk_r1":
        return {"a2t_hit": (rng.random(n) < quality * 0.4).astype(np.int64),
                "t2a_hits": rng.binomial(5, quality * 0.4, n), "captions": np.full(n, 5)}
    if metric == "WER_inv":
        words = rng.integers(5, 40, n)
        return {"errors": rng.binomial(words, 1 - quality), "ref_words": words}
    raise ValueError(f"no generator for metric {metric!r}")


def generate(submissions: int, tasks: int, repeats: int, seed: int, skip: tuple[str, ...] = (),
             reference: bool = False) -> dict[str, Any]:
    """Rows and per-clip sources as `build_board` hands them to the bootstrap (Track A when repeats > 1;
    `reference`: every row scored by `checker.clips.recompute` itself, the cost before fast_metrics)."""
    from checker import clips as clipfile
    from harness.rank import bootstrap, formula
    from harness.rank.model import Cell, CellState, Entry, MissingPolicy, Provenance, Track
    from harness.tasks.registry import load_registry

    registry = load_registry()
    chosen = [t for t in registry if t.eval_weight and t.worst is not None and t.metric in clipfile.SUPPORTED_METRICS
              and (t.metric in CLASSES or t.metric in ("accuracy", "recallatk_r1", "WER_inv"))
              and t.metric not in skip][:tasks]
    track = Track.A if repeats > 1 else Track.B
    rng = np.random.default_rng(seed)
    rows, sources = [], {}
    names = [t.name for t in chosen]
    for s in range(submissions):
        sha = f"{s:064x}"
        quality = 0.55 + 0.4 * s / max(1, submissions - 1)
        runs, cells = [], {}
        for task in chosen:
            n = int(task.eval_weight)
            keys = np.array([f"{task.name}-{i:06d}" for i in range(n)])
            values = []
            for r in range(repeats):
                made = clipfile.ClipRun(task=task.name, track=track.value, run=r, seed=r, metric=task.metric,
                                        reported=0.0, keys=keys, arrays=_arrays(task.metric, n, quality, rng))
                value = float(clipfile.recompute(made))
                runs.append(clipfile.ClipRun(task=task.name, track=track.value, run=r, seed=r, metric=task.metric,
                                             reported=value, keys=keys, arrays=made.arrays))
                values.append(value)
            cells[task.name] = Cell(task.name, CellState.VALUE, raw=sum(values) / len(values),
                                    values=tuple(values) if repeats > 1 else ())
        entry = Entry(track=track, name=f"submission-{s:02d}", provenance=Provenance.UNSIGNED, cells=cells, sha256=sha)
        rows.append(formula.score_entry(entry, names, registry, MissingPolicy.ZERO))
        clips = bootstrap.from_clip_runs(runs)
        if reference:
            clips = {k: dataclasses.replace(v, runs=tuple(functools.partial(clipfile.recompute, s.run) for s in v.runs))
                     for k, v in clips.items()}
        sources[sha] = bootstrap.ClipSource(clips=clips)
    return {"rows": rows, "sources": sources, "tasks": names, "registry": registry, "track": track,
            "clips": sum(int(t.eval_weight) for t in chosen), "metrics": sorted({t.metric for t in chosen})}


def measure(submissions: int = 30, tasks: int = 27, resamples: int = 1000, repeats: int = 1, seed: int = 0,
            skip: tuple[str, ...] = (), reference: bool = False) -> dict:
    """Seconds for the bootstrap at this scale, and what it was run on (`skip`: metrics left out;
    `reference`: scored by `checker.clips.recompute`, row by row, as before fast_metrics)."""
    from harness.rank import bootstrap, formula

    started = time.monotonic()
    data = generate(submissions, tasks, repeats, seed, skip, reference)
    generated = time.monotonic() - started
    spec = bootstrap.BootstrapSpec(resamples=resamples, seed=seed)
    started = time.monotonic()
    resampled = bootstrap.resample_track(data["track"], data["rows"], data["tasks"], data["registry"],
                                         data["sources"], spec)
    resample_s = time.monotonic() - started
    ranked = formula.rank_rows(data["rows"], data["track"], resampled.ahead, spec.tie_confidence)
    ranks = resampled.rank_stats(ranked)
    total = time.monotonic() - started
    groups = len({r.rank for r in ranked})
    return {"submissions": submissions, "tasks": len(data["tasks"]), "clips_per_row": data["clips"],
            "largest_task": max(resampled.clips.values()), "resamples": resamples, "repeats": repeats,
            "metrics": data["metrics"], "scorer": "reference" if reference else "fast_metrics",
            "cpus": os.cpu_count(), "generate_s": round(generated, 2),
            "resample_s": round(resample_s, 3),
            "bootstrap_s": round(total, 3), "rows_with_interval": len(resampled.rows), "distinct_ranks": groups,
            "rank_stats": len(ranks)}


class BootstrapCost:
    """The bench group `bootstrap` (mixed into bench.scenarios.Bench)."""

    def bootstrap_cost(self) -> None:
        from bench.sampling import progress

        for repeats in (1, 3):
            progress(f"bootstrap: 30 submissions x 27 tasks x real sizes, 1000 resamples, {repeats} repeat(s)")
            found = measure(repeats=repeats)
            self.rec.add("bootstrap_s" if repeats == 1 else "bootstrap_track_a_s", found["bootstrap_s"])
            self.rec.record("bootstrap", found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=27)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="Track A repeats per task (1: Track B)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated metrics to leave out (e.g. mAP: see its cost)")
    parser.add_argument("--reference", action="store_true",
                        help="score with checker.clips.recompute row by row (the cost without fast_metrics)")
    args = parser.parse_args(argv)
    skip = tuple(m for m in args.skip.split(",") if m)
    print(json.dumps(measure(args.submissions, args.tasks, args.resamples, args.repeats, args.seed, skip,
                             args.reference), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
