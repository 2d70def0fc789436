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

Only audio arrives here (no keys, no labels). The output, per batch, is `<batch>.{json,bin}` with
the embedding tensor; the host counts batches and samples itself and never trusts this process's
own summary.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from pathlib import Path

from checker.batchio import DTYPES, read_tensor, write_tensor
from checker.jobs import ENCODE_DONE, EncodeJob, read_jobs

MAX_AUDIO_BATCH = 8 * 1024**3


def load_encoder(submission: str, spec: str):
    file, _, cls_name = spec.partition(":")
    sys.path.insert(0, submission)
    os.chdir(submission)  # relative weight paths resolve as in the participant's own checkout
    module = importlib.import_module(Path(file).with_suffix("").as_posix().replace("/", "."))
    return getattr(module, cls_name)()


def encode_task(encoder, device, audio_root: Path, out_root: Path, seed: int) -> int:
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
            audio, _header = read_tensor(split_in / name, MAX_AUDIO_BATCH)
            with torch.inference_mode():
                embedding = encoder(audio.to(device)).to("cpu").detach()
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
    for job in jobs:
        out_root = Path(job.out)
        try:
            total = encode_task(encoder, device, Path(job.audio), out_root, args.seed)
        except EncodeError as exc:
            print(f"aecc-encode: {exc}", file=sys.stderr, flush=True)
            return 1
        (out_root / ENCODE_DONE).write_text(str(total))
        print(f"aecc-encode: {total} samples encoded for {out_root.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
