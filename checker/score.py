"""Score stage (trusted runtime image, network off): embeddings + labels -> X-ARES's Track A and B.

    python -P -m checker.score --jobs JOBS.json --encoder-name NAME --sampling-rate SR --hop-ms H
        --output-dim D [--models /models]

JOBS.json lists one `checker.jobs.ScoreJob` per task: {"task", "config_function", "prepared",
"embeddings", "work", "request": {"seed", "repeats", "mode"}, "out"}; every task is scored in turn in
one process and writes its own `out` JSON, an error too. The argv holds what is the same for every
task (the encoder); how a task is scored (`ScoreRequest`) is in its job.

The probes are X-ARES's own: this module writes the encoded shards X-ARES's `make_encoded_tar`
would have written (same order, same `npy` + `json` + key records, same shard size) into a scratch
env, then calls `XaresTask.run_mlp()` (Track A) and `XaresTask.run_knn()` (Track B) on it.

What differs from running X-ARES, and why:
- Keys. X-ARES keys a record `filename + batch index`; several crops of one clip in one batch then
  share a key and its reader drops all but one. Mode `unique` (the default) suffixes a repeated key
  with its position so nothing is lost; mode `xares` reproduces the loss. Either way the number
  of records X-ARES's reader yields is counted per split and reported beside what was written.
- Seeds. X-ARES seeds its training shuffle from pid and time, so Track A differs run to run. Here
  the `random.Random(<seed>)` calls inside `webdataset.filters` take seeds derived from the request's
  seed instead (the shuffle itself is unchanged), and torch/numpy/random are reseeded per repeat.
  Track A runs the request's `repeats` times on derived seeds; mean, spread and seeds are reported.
- Caches. The encoder class name X-ARES keys checkpoints and scores by is `--encoder-name`, unique
  per submission, in a scratch env that belongs to one submission and task.
- Pretrained dependencies. Each task runs with its writable work folder as the working directory,
  where X-ARES looks for (and would otherwise download) `Qwen/Qwen2.5-0.5B` and
  `google-bert/bert-base-uncased`; with `--models` the verified, read-only store is linked there and
  the Hugging Face libraries are offline (`checker.taskload.lay_out_models`).
- Per-clip outputs. While the probes evaluate, `checker.capture` records what X-ARES's metric is
  fed, per clip (a hook on the evaluating trainers' metric, not a fork: see its docstring); each
  Track A repeat and Track B whose recomputed metric equals X-ARES's number (`checker.clips`) goes
  into `clips.npz` beside `out`, and the answer's `clips` says how many runs it holds and why any
  has none. The host moves it beside result.json; it never enters a submission's container.
- Disabled tasks. `XaresTask` ignores `TaskConfig.disabled` (only `xares.run`'s worker skips such a
  task), so a disabled task whose data the organizer supplied is scored; the answer carries
  `xares_disabled` so that the result records the override.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

from checker import capture, clips
from checker.batchio import read_tensor
from checker.jobs import (
    Mode,
    ScoreFailure,
    ScoreFailureKind,
    ScoreJob,
    derive_seed,
    read_jobs,
    write_atomic,
)
from checker.taskload import force_offline, lay_out_models, load_config, stand_in_encoder

MAX_EMBEDDING_BATCH = 16 * 1024**3


class ScoreInputError(Exception):
    """Embeddings that do not match what was prepared: the submission's encode output is wrong."""


class _SeededRandomModule(types.ModuleType):
    """Stands in for `random` inside `webdataset.filters`: `Random(x)` gets the next derived seed."""

    def __init__(self, base_seed: int):
        super().__init__("random")
        self._base = base_seed
        self._count = 0
        self.seeds_used: list[int] = []

    def __getattr__(self, name):
        return getattr(random, name)

    def Random(self, *args):  # noqa: N802 (mirrors random.Random)
        if not args:
            return random.Random()
        seed = derive_seed(self._base, "wds-shuffle", self._count)
        self._count += 1
        self.seeds_used.append(seed)
        return random.Random(seed)


def write_encoded(config, task, split: str, dirname: str, prepared: Path, embeddings: Path, mode: Mode,
                  output_dim: int, clip_ids: dict[str, str] | None = None) -> dict:
    """X-ARES's encoded shards for one split, from the trusted meta and the untrusted embeddings.

    `clip_ids` receives, per key written, the clip's canonical id `<split>/<meta key>` (`#<n>` added
    for the n-th further crop of one clip): it does not depend on batching, so the per-clip outputs
    of two submissions align on it."""
    import numpy as np
    import webdataset as wds

    meta = [json.loads(line) for line in (prepared / "meta" / f"{dirname}.jsonl").read_text().splitlines()]
    by_batch: dict[int, list[dict]] = {}
    for row in meta:
        by_batch.setdefault(row["batch"], []).append(row)
    pattern = task.encoded_tar_path_of_split[_split_key(config, split)].as_posix().replace("*", "0%05d")
    sink = wds.ShardWriter(pattern, encoder=False, compress=False, maxcount=config.save_encoded_per_batches,
                           verbose=False)
    written = nonfinite = 0
    used: set[str] = set()
    duplicates = 0
    occurrences: dict[str, int] = {}
    try:
        for batch in sorted(by_batch):
            rows = sorted(by_batch[batch], key=lambda r: r["pos"])
            prefix = embeddings / dirname / f"{batch:06d}"
            if not Path(f"{prefix}.json").exists():
                raise ScoreInputError(f"split {split}: no embeddings for batch {batch}")
            emb, _header = read_tensor(prefix, MAX_EMBEDDING_BATCH)
            if emb.ndim != 3 or emb.shape[0] != len(rows) or emb.shape[2] != output_dim:
                raise ScoreInputError(
                    f"split {split} batch {batch}: expected [{len(rows)}, T', {output_dim}], got {list(emb.shape)}")
            nonfinite += int((~emb.float().isfinite()).any(dim=(1, 2)).sum())
            for row, embed in zip(rows, emb):
                key = f"{row['key']}{batch}"  # X-ARES's own key
                if key in used:
                    duplicates += 1
                    if mode is Mode.UNIQUE:
                        key = f"{key}_{row['pos']}"
                used.add(key)
                if clip_ids is not None:
                    seen = occurrences.get(row["key"], 0)
                    occurrences[row["key"]] = seen + 1
                    clip_ids.setdefault(key, f"{split}/{row['key']}" + (f"#{seen}" if seen else ""))
                buf = io.BytesIO()
                np.save(buf, embed.numpy())
                sink.write({"npy": buf.getvalue(), "json": json.dumps(row["json"]).encode("utf-8"), "__key__": key})
                written += 1
        extra = sorted(int(p.name[:-5]) for p in (embeddings / dirname).glob("*.json")
                       if p.name[:-5].isdigit() and int(p.name[:-5]) not in by_batch)
        if extra:
            raise ScoreInputError(f"split {split}: embeddings for batches that were never prepared: {extra[:5]}")
    finally:
        sink.close()
    return {"prepared": len(meta), "written": written, "duplicate_keys": duplicates, "nonfinite_samples": nonfinite}


def _split_key(config, split: str):
    for key in config.encoded_tar_name_of_split:
        if str(key) == split:
            return key
    raise KeyError(split)


def count_read_back(config, task, split: str) -> tuple[int, list[str]]:
    """How many records X-ARES's own embedding reader yields for a split (it skips with a warning)."""
    import torch
    from xares.audiowebdataset import create_embedding_webdataset

    state = torch.get_rng_state()  # counting must not move the generator training will use
    url = task.encoded_tar_path_of_split[_split_key(config, split)].as_posix()
    count = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dl = create_embedding_webdataset([url], batch_size=64, num_workers=0, training=False)
        for (_x, _lengths), _y, filenames in dl:
            count += len(filenames)
    torch.set_rng_state(state)
    # Only the reader's own skips matter here (webdataset reports them as UserWarning with the
    # exception's repr); resource and pin_memory notices are noise.
    skips = [str(w.message)[:200] for w in caught
             if issubclass(w.category, UserWarning) and "pin_memory" not in str(w.message)]
    return count, skips[:10]


def _clear_scores(task) -> None:
    if task.ckpt_dir.exists():
        shutil.rmtree(task.ckpt_dir)


def _float(value) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def score(args: argparse.Namespace, job: ScoreJob) -> dict:
    """One task: `job`, scored as its `request` says, for the encoder `args` describes."""
    import numpy as np
    import torch
    import webdataset.filters as wds_filters
    from xares.task import XaresTask

    encoder = stand_in_encoder(args.encoder_name, args.sampling_rate, args.output_dim, args.hop_ms)
    request = job.request
    config = load_config(job.task, job.config_function, encoder)
    config.env_root = str(Path(job.work) / "env")
    # Read before XaresTask runs: its download step removes the names it handled from the list.
    dependencies = list(getattr(config, "pretrained_dependencies", None) or [])
    disabled = bool(getattr(config, "disabled", False))
    task_dir = Path(config.env_root) / config.name
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / config.xares_settings.audio_ready_filename).touch()  # never a Zenodo download
    task = XaresTask(config=config)
    prepared, embeddings = Path(job.prepared), Path(job.embeddings)
    order = json.loads((prepared / "audio" / "order.json").read_text())
    counts = {}
    clip_ids: dict[str, str] = {}
    for entry in order:
        counts[entry["split"]] = write_encoded(config, task, entry["split"], entry["dir"], prepared, embeddings,
                                               request.mode, args.output_dim, clip_ids)
    task.encoded_ready_path.touch()
    for entry in order:
        read, messages = count_read_back(config, task, entry["split"])
        counts[entry["split"]].update(read_back=read, lost=counts[entry["split"]]["written"] - read,
                                      reader_warnings=messages)

    shim = _SeededRandomModule(request.seed)
    wds_filters.random = shim
    track_a_values, seeds = [], []
    kept = Kept(config.name, clip_ids)
    started = time.monotonic()
    with capture.hooks(capture.Recorder()) as recorder:
        for repeat in range(request.repeats):
            seed = derive_seed(request.seed, "track-a", repeat)
            seeds.append(seed)
            shim._base = seed
            shim._count = 0
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            _clear_scores(task)
            value, _weight = task.run_mlp()
            track_a_values.append(_float(value))
            kept.add(recorder.take(), track="A", run=repeat, seed=seed, reported=track_a_values[-1])
        track_a_s = time.monotonic() - started
        started = time.monotonic()
        track_b = None
        if config.do_knn:
            shim._base = derive_seed(request.seed, "track-b")
            shim._count = 0
            torch.manual_seed(config.seed)
            value, _weight = task.run_knn()
            track_b = _float(value)
            kept.add(recorder.take(), track="B", run=0, seed=None, reported=track_b)
    return {
        "task": config.name,
        "formal_name": config.formal_name,
        "metric": config.metric,
        "eval_weight": config.eval_weight,
        "mode": request.mode.value,
        "track_a": {
            "value": statistics.fmean(track_a_values) if track_a_values else None,
            "values": track_a_values,
            "seeds": seeds,
            "std": statistics.pstdev(track_a_values) if len(track_a_values) > 1 else 0.0,
        },
        "track_b": track_b,
        "do_knn": bool(config.do_knn),
        "counts": counts,
        "finite": all(not math.isnan(v) for v in track_a_values),
        # X-ARES marks the task disabled (only xares.run's worker reads that; XaresTask, used here, does
        # not): the score exists because the harness overrode the flag, and the result says so
        "xares_disabled": disabled,
        "pretrained_dependencies": dependencies,
        "timings": {"track_a_s": round(track_a_s, 3), "track_b_s": round(time.monotonic() - started, 3)},
        "clips": kept.write(Path(job.out).with_name(clips.CLIPS_NAME)),
        "peak_rss_bytes": _peak_rss(),
    }


class Kept:
    """The per-clip outputs of one task's runs (`checker.capture`), and why any run has none."""

    def __init__(self, task: str, clip_ids: dict[str, str]):
        self.task = task
        self.clip_ids = clip_ids
        self.runs: list[clips.ClipRun] = []
        self.skipped: list[dict] = []

    def add(self, evaluations: list, *, track: str, run: int, seed: int | None, reported: float) -> None:
        try:
            self.runs.append(capture.build_run(evaluations, task=self.task, track=track, run=run, seed=seed,
                                               reported=reported, clip_ids=self.clip_ids))
        except Exception as exc:  # noqa: BLE001 (a run without clips is still scored; the reason is kept)
            reason = str(exc) if isinstance(exc, capture.NotCapturable) else f"{type(exc).__name__}: {exc}"
            self.skipped.append({"track": track, "run": run, "reason": reason[:500]})
            print(f"aecc-score: {self.task}: no per-clip outputs for track {track} run {run}: {reason[:500]}",
                  file=sys.stderr, flush=True)

    def write(self, path: Path) -> dict:
        """The clips file beside the score answer, and what the answer says of it."""
        path.unlink(missing_ok=True)
        if self.runs:
            try:
                clips.write_clips(path, self.runs)
            except (OSError, clips.ClipsError) as exc:  # the scores stand without their clips
                self.skipped += [{"track": r.track, "run": r.run, "reason": f"writing {path.name} failed: {exc}"[:500]}
                                 for r in self.runs]
                self.runs = []
        return {"file": path.name if self.runs else None, "runs": len(self.runs), "skipped": self.skipped}


def _peak_rss() -> int:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def enter_work_dir(work: str, models: str | None) -> list[str]:
    """Run the task with its own writable work folder as the working directory: X-ARES writes its
    Hugging Face copies relative to it, and finds the model store's links there."""
    os.chdir(work)
    return lay_out_models(models, work) if models else []


def main(argv: list[str] | None = None) -> int:
    import traceback

    parser = argparse.ArgumentParser(prog="checker.score")
    parser.add_argument("--jobs", required=True)
    parser.add_argument("--encoder-name", required=True)
    parser.add_argument("--sampling-rate", type=int, required=True)
    parser.add_argument("--hop-ms", type=float, required=True)
    parser.add_argument("--output-dim", type=int, required=True)
    parser.add_argument("--models", help="the verified model store, mounted read-only (aecc score --models)")
    args = parser.parse_args(argv)
    force_offline()
    for job in read_jobs(args.jobs, ScoreJob):
        out = Path(job.out)
        try:
            enter_work_dir(job.work, args.models)
            result = score(args, job)
        except ScoreInputError as exc:
            write_atomic(out, ScoreFailure(ScoreFailureKind.EMBEDDINGS, str(exc)).to_json())
            print(f"aecc-score: {job.task}: {exc}", file=sys.stderr, flush=True)
            continue
        except Exception:  # X-ARES failed on this task: the others may still score
            detail = traceback.format_exc()[-3000:]
            write_atomic(out, ScoreFailure(ScoreFailureKind.SCORING, detail).to_json())
            print(f"aecc-score: {job.task}: scoring failed:\n{detail}", file=sys.stderr, flush=True)
            continue
        write_atomic(out, json.dumps(result, indent=1))
        print(f"aecc-score: {result['task']}: track A {result['track_a']['value']}, track B {result['track_b']}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
