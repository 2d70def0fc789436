"""Encode stage (submission image, network off): label-free audio batches -> embeddings.

    python -P -m checker.encode --submission DIR --encoder FILE.py:Class --jobs JOBS.json
        [--seed 42] [--threads 2] [--device auto|cpu|cuda]

JOBS.json lists {"audio": DIR, "out": DIR} per task; the encoder is constructed once and every task
is encoded in turn, `OUT/.agent-done` written after each (the host uses it only to time tasks; it
verifies the embeddings itself).

Mirrors `XaresTask.make_encoded_tar` so that embeddings equal what X-ARES computes: the encoder is
constructed before any seeding (X-ARES constructs it first, then its TaskConfig seeds torch), moved
to CUDA when there is one, left in whatever mode its constructor set (X-ARES never calls
`.eval()`), and called on each padded batch under `torch.inference_mode()`. Before each split one
draw is taken from torch's generator, as the DataLoader iterator X-ARES creates per split does;
that keeps a stochastic encoder's random stream aligned with X-ARES's.

Every forward is watched (`checker.watchdog`): a 0.5 s warm-up with a fixed budget, then each
batch with a budget from the encoder's own measured speed, so a hang in the middle of a long task
fails that task in minutes, not at the stage's wall clock.

Only audio arrives here (no keys, no labels). The output, per batch, is `<batch>.{json,bin}` with
the embedding tensor; the host counts batches and samples itself and never trusts this process's
own summary.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import traceback
from pathlib import Path

from checker.batchio import DTYPES, read_tensor, write_tensor
from checker.jobs import ENCODE_DONE, EncodeJob, read_jobs
from checker.watchdog import WARMUP_SECONDS, Call, Watchdog

MAX_AUDIO_BATCH = 8 * 1024**3


def load_encoder(submission: str, spec: str):
    file, _, cls_name = spec.partition(":")
    sys.path.insert(0, submission)
    os.chdir(submission)  # relative weight paths resolve as in the participant's own checkout
    module = importlib.import_module(Path(file).with_suffix("").as_posix().replace("/", "."))
    return getattr(module, cls_name)()


def warm_up(encoder, device, watchdog: Watchdog, audio, sampling_rate: int) -> None:
    """The watchdog's warm-up (its fixed budget) on a 0.5 s crop of the first clip, outside the
    random stream: torch's, numpy's and Python's generators are restored afterwards, so a
    stochastic encoder's embeddings stay those X-ARES computes."""
    import random

    import torch

    crop = audio[:1, : max(1, int(WARMUP_SECONDS * sampling_rate))]
    python_state = random.getstate()
    try:
        import numpy

        numpy_state = numpy.random.get_state()
    except ImportError:
        numpy, numpy_state = None, None
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        with watchdog.call("warm-up forward", 1, crop.shape[-1] / sampling_rate), torch.inference_mode():
            encoder(crop.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()
    random.setstate(python_state)
    if numpy is not None:
        numpy.random.set_state(numpy_state)


def encode_task(encoder, device, audio_root: Path, out_root: Path, seed: int, watchdog: Watchdog | None = None,
                sampling_rate: int | None = None) -> int:
    import torch

    torch.manual_seed(seed)  # X-ARES reseeds for every task (TaskConfig and XaresTask)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass
    order = json.loads((audio_root / "order.json").read_text())
    total = 0
    for entry in order:
        split_in, split_out = audio_root / entry["dir"], out_root / entry["dir"]
        split_out.mkdir(parents=True, exist_ok=True)
        torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's base-seed draw
        batches = sorted(p.name[: -len(".json")] for p in split_in.glob("*.json"))
        for name in batches:
            audio, _header = read_tensor(split_in / name, MAX_AUDIO_BATCH, linked_ok=True)
            watch = contextlib.nullcontext()
            if watchdog is not None:
                if watchdog.budget.reference is None:
                    warm_up(encoder, device, watchdog, audio, sampling_rate)
                watch = watchdog.call(f"batch {name} of split {entry['split']} (task {out_root.name})",
                                      int(audio.shape[0]), audio.shape[-1] / sampling_rate)
            with watch, torch.inference_mode():
                embedding = encoder(audio.to(device))
                if device.type == "cuda":
                    torch.cuda.synchronize()
            embedding = embedding.to("cpu").detach() if isinstance(embedding, torch.Tensor) else embedding
            if not isinstance(embedding, torch.Tensor) or embedding.ndim != 3 or embedding.shape[0] != audio.shape[0]:
                shape = getattr(embedding, "shape", type(embedding).__name__)
                raise EncodeError(f"batch {name}: expected a [B, T', D] tensor with B={audio.shape[0]}, got {shape}")
            dtype = str(embedding.dtype).replace("torch.", "")
            if dtype not in DTYPES:
                raise EncodeError(f"batch {name}: dtype {dtype} cannot be stored (X-ARES stores numpy arrays; "
                                  f"use one of {sorted(DTYPES)})")
            write_tensor(split_out / name, embedding)
            total += audio.shape[0]
        print(f"aecc-encode: {entry['split']}: {len(batches)} batches", flush=True)
    return total


def _timed_out(call: Call) -> int:
    """A batch past its budget: the task fails with this line as its reason (the host quotes the
    log's last line), and the tasks not reached run in a new container."""
    sys.stdout.flush()
    print(f"aecc-encode: forward_timeout: {call.describe()}", file=sys.stderr, flush=True)
    return 1


class EncodeError(Exception):
    """The encoder's output cannot be stored as X-ARES would store it."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker.encode")
    parser.add_argument("--submission", required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--jobs", required=True, help="JSON list of {audio, out}")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    jobs = read_jobs(args.jobs, EncodeJob)

    import torch

    try:
        encoder = load_encoder(args.submission, args.encoder)
    except BaseException:
        # The whole traceback goes to the stage log; its last line (type and message) is what the
        # host quotes as the task's reason.
        print("aecc-encode: the encoder could not be constructed:\n" + traceback.format_exc(), file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    encoder = encoder.to(device)
    watchdog = Watchdog(_timed_out)
    sampling_rate = int(getattr(encoder, "sampling_rate", 16000) or 16000)
    for job in jobs:
        out_root = Path(job.out)
        try:
            total = encode_task(encoder, device, Path(job.audio), out_root, args.seed, watchdog, sampling_rate)
        except EncodeError as exc:
            print(f"aecc-encode: {exc}", file=sys.stderr, flush=True)
            return 1
        (out_root / ENCODE_DONE).write_text(str(total))
        print(f"aecc-encode: {total} samples encoded for {out_root.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
