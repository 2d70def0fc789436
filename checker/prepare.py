"""Prepare stage (trusted runtime image, network off): X-ARES task data -> label-free audio batches.

    python -P -m checker.prepare --jobs JOBS.json --env /env --sampling-rate SR --hop-ms H --output-dim D

JOBS.json is a list of {"task": MODULE, "config_function": NAME or null, "out": DIR}: one container
prepares every task that is not cached yet (importing torch and X-ARES once, not once per task).
A task whose data is bad gets `DIR/error.json` and the others go on.

Runs X-ARES's own raw-audio pipeline (`create_rawaudio_webdataset`) with exactly the arguments
`XaresTask.make_encoded_tar` uses (decode, resample to the encoder's rate, mono, crops, batch size,
worker count, padding), so every batch is the tensor X-ARES would hand the encoder. It writes:

    /out/audio/order.json               split directories in X-ARES's iteration order
    /out/audio/<split>/<batch>.{json,bin} padded float32 [B, T] audio, lengths in the header
    /out/meta/<split>.jsonl             per sample: batch, position, source key and its label json
    /out/manifest.json                  counts: keys in the shards, samples X-ARES yielded, drops

Only `/out/audio` is ever shown to a submission: no keys (file names can encode labels, ESC-50's
do), no json. A sample X-ARES would drop with only a warning (missing json, undecodable audio) is
counted and named in the manifest, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
import warnings
from pathlib import Path

from checker.batchio import write_tensor
from checker.jobs import PrepareFailure, PrepareJob, read_jobs, write_atomic
from checker.taskload import load_config, stand_in_encoder

AUDIO_EXTENSIONS = ("flac", "mp3", "sox", "wav", "m4a", "ogg", "wma")  # X-ARES's rename key list


class DataError(Exception):
    """The task data is missing or corrupt: an infrastructure problem, never the submission's."""


def split_dirname(split: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(split))


def inventory(tar_paths: list[str]) -> dict:
    """Keys in the shards and what each has, read with tarfile (no decoding).

    tarfile stops quietly at the first header it cannot parse, as if the archive ended there, and
    so does webdataset; a shard whose bytes go on past that point (anything but the zero blocks
    that end a tar) is therefore reported as corrupt, by name, rather than read as a shorter shard.
    """
    keys: dict[str, set] = {}
    shard_of: dict[str, str] = {}
    for path in tar_paths:
        size = Path(path).stat().st_size
        try:
            with tarfile.open(path, "r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    if member.offset_data + member.size > size:
                        raise DataError(f"shard {path} is truncated inside member {member.name!r}")
                    name = member.name.rsplit("/", 1)[-1]
                    key, _, ext = name.partition(".")
                    keys.setdefault(key, set()).add(ext.lower())
                    shard_of.setdefault(key, Path(path).name)
                end = tar.offset
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"shard {path} is unreadable: {exc}") from None
        with open(path, "rb") as fh:
            fh.seek(end)
            rest = fh.read()
        if rest.strip(b"\0"):
            raise DataError(f"shard {path} is corrupt: {len(rest)} bytes after byte {end} are not a tar entry")
    no_json = sorted(k for k, exts in keys.items() if "json" not in exts)
    no_audio = sorted(k for k, exts in keys.items() if not exts & set(AUDIO_EXTENSIONS))
    return {
        "keys": len(keys),
        "missing_json": [f"{k} ({shard_of[k]})" for k in no_json],
        "missing_audio": [f"{k} ({shard_of[k]})" for k in no_audio],
    }


def prepare(args: argparse.Namespace) -> dict:
    """One task: `args.task`, `args.config_function`, `args.out` plus the shared encoder attributes."""
    from xares.audiowebdataset import create_rawaudio_webdataset, expand_with_brace

    encoder = stand_in_encoder("AeccPrepare", args.sampling_rate, args.output_dim, args.hop_ms)
    config = load_config(args.task, args.config_function, encoder)
    env_dir = Path(args.env) / config.name
    if not (env_dir / ".audio_tar_ready").exists():
        raise DataError(f"task data for {config.name!r} not found: {env_dir}/.audio_tar_ready is missing")
    out = Path(args.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "task": config.name,
        "sampling_rate": args.sampling_rate,
        "crop_length": config.crop_length,
        "batch_size_encode": config.batch_size_encode,
        "splits": [],
    }
    # make_encoded_tar uses loader workers only under the fork start method; `xares.run`, the way the
    # challenge scores, sets "spawn" first, so the official encode loop reads shards with no workers
    # (one after another, in glob order). Worker interleaving would change batch composition when a
    # split has several shards, so this follows xares.run (and costs no worker start-ups).
    workers = 0
    order = []
    for split, pattern in config.audio_tar_name_of_split.items():
        url = (env_dir / pattern).as_posix()
        try:
            tars = expand_with_brace([url])
        except FileNotFoundError as exc:
            raise DataError(f"split {split!r} of {config.name}: {exc}") from None
        if not tars:
            raise DataError(f"split {split!r} of {config.name}: no shard matches {url}")
        inv = inventory(tars)
        name = split_dirname(split)
        order.append({"split": str(split), "dir": name})
        audio_dir = out / "audio" / name
        audio_dir.mkdir(exist_ok=True)
        dl = create_rawaudio_webdataset(
            [url],
            target_sample_rate=args.sampling_rate,
            audio_key_name="audio",
            num_workers=workers,
            batch_size=config.batch_size_encode,
            crop_length=config.crop_length,
            pad_last=True,
        )
        batches = samples = 0
        yielded: set[str] = set()
        with warnings.catch_warnings(record=True) as caught, open(out / "meta" / f"{name}.jsonl", "w") as meta:
            warnings.simplefilter("always")
            for enum_item, ((audio, lengths), json_data, filenames) in enumerate(dl):
                write_tensor(audio_dir / f"{enum_item:06d}", audio, {"lengths": [int(n) for n in lengths]})
                for pos, (sample_json, filename) in enumerate(zip(json_data, filenames)):
                    meta.write(json.dumps({"batch": enum_item, "pos": pos, "key": filename, "json": sample_json}) + "\n")
                    yielded.add(filename)
                batches += 1
                samples += len(filenames)
        dropped = inv["keys"] - len(yielded)
        manifest["splits"].append(
            {
                "split": str(split),
                "dir": name,
                "shards": len(tars),
                "source_keys": inv["keys"],
                "yielded_keys": len(yielded),
                "dropped_keys": dropped,
                "missing_json": inv["missing_json"][:20],
                "missing_audio": inv["missing_audio"][:20],
                "batches": batches,
                "samples": samples,  # crops count separately: one clip may give several
                "warnings": [str(w.message)[:300] for w in caught][:20],
            }
        )
    (out / "audio" / "order.json").write_text(json.dumps(order))
    manifest["complete"] = True
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker.prepare")
    parser.add_argument("--jobs", required=True, help="JSON list of {task, config_function, out}")
    parser.add_argument("--env", required=True)
    parser.add_argument("--sampling-rate", type=int, required=True)
    parser.add_argument("--hop-ms", type=float, required=True)
    parser.add_argument("--output-dim", type=int, required=True)
    args = parser.parse_args(argv)
    for job in read_jobs(args.jobs, PrepareJob):
        one = argparse.Namespace(**vars(args), task=job.task, config_function=job.config_function, out=job.out)
        try:
            manifest = prepare(one)
        except DataError as exc:
            print(f"aecc-prepare: {job.task}: data error: {exc}", file=sys.stderr, flush=True)
            write_atomic(Path(one.out, "error.json"), PrepareFailure(str(exc)).to_json())
            continue
        total = sum(s["samples"] for s in manifest["splits"])
        print(f"aecc-prepare: {manifest['task']}: {len(manifest['splits'])} splits, {total} samples", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
