"""Fetch agent (trusted runtime image, network on): download X-ARES's pretrained dependencies.

    python -P -m checker.models fetch --jobs JOBS.json --out /models --answer ANSWER.json --endpoint URL

JOBS.json lists {"repo", "xares_dependency", "patterns", "parts"}; each repository is downloaded at its
current commit into `/models/<repo>/` (the layout X-ARES loads from, see harness.tasks.models) and then
loaded once with transformers, so that a store which cannot be loaded is found here and not in the
middle of a scoring run. The answer says which commit each came from, or why it failed:

    {"ok": true, "models": [{"repo", "xares_dependency", "revision"}]}
    {"ok": false, "error": "unreachable", "host": H, "detail": D}   the hub does not answer
    {"ok": false, "error": "download", "repo": R, "detail": D}      it answered, the download failed

The host hashes the files itself and writes the manifest: it does not take the container's word for them.
Standard library at import time; huggingface_hub and transformers are imported when used.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from checker.jobs import write_atomic

CONNECT_TIMEOUT_S = 15.0


def _answer(path: str, data: dict) -> None:
    write_atomic(Path(path), json.dumps(data, indent=1))


def reachable(endpoint: str) -> str | None:
    """None when a TCP connection to the endpoint's host opens, else why not (no data is sent)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc} (connecting to {host}:{port})"
    return None


def _load_check(directory: Path, parts: list[str]) -> None:
    """Load what X-ARES will load, from the folder, offline: a store that fails here fails scoring."""
    from transformers import AutoConfig, AutoTokenizer

    if "tokenizer" in parts:
        AutoTokenizer.from_pretrained(str(directory))
    if "model" in parts:
        AutoConfig.from_pretrained(str(directory))


def fetch(jobs: list[dict], out: Path, endpoint: str, answer: str) -> int:
    host = urlsplit(endpoint).hostname or endpoint
    problem = reachable(endpoint)
    if problem is not None:
        print(f"aecc-models: {host} cannot be reached: {problem}", file=sys.stderr, flush=True)
        _answer(answer, {"ok": False, "error": "unreachable", "host": host, "detail": problem})
        return 3
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi(endpoint=endpoint)
    done = []
    for job in jobs:
        repo = job["repo"]
        target = out / repo
        try:
            revision = api.model_info(repo).sha
            print(f"aecc-models: {repo} at {revision}", flush=True)
            snapshot_download(repo_id=repo, revision=revision, local_dir=str(target),
                              allow_patterns=list(job["patterns"]), endpoint=endpoint)
            # snapshot_download keeps its bookkeeping under local_dir/.cache: not part of the model
            shutil.rmtree(target / ".cache", ignore_errors=True)
            _load_check(target, list(job["parts"]))
        except Exception as exc:  # noqa: BLE001 (every failure goes back to the host, named)
            detail = f"{type(exc).__name__}: {exc}"
            unreachable = isinstance(exc, OSError) and reachable(endpoint) is not None
            print(f"aecc-models: {repo}: {detail}\n{traceback.format_exc()[-2000:]}", file=sys.stderr, flush=True)
            _answer(answer, {"ok": False, "error": "unreachable" if unreachable else "download", "host": host,
                             "repo": repo, "detail": detail[:2000]})
            return 3
        done.append({"repo": repo, "xares_dependency": job["xares_dependency"], "revision": revision})
    _answer(answer, {"ok": True, "models": done})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker.models")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--jobs", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--answer", required=True)
    f.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    jobs = json.loads(Path(args.jobs).read_text())
    return fetch(jobs, Path(args.out), args.endpoint, args.answer)


if __name__ == "__main__":
    sys.exit(main())
