"""Model stores made of plain files (their bytes do not matter to the manifest, only their names and
hashes), and task data folders laid out the way X-ARES globs them: for the task, CLI and pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

QWEN_FILES = {"config.json": None, "generation_config.json": b'{"eos_token_id": 0}',
              "model.safetensors": b"\x00" * 4096, "tokenizer.json": b'{"model": {}}',
              "tokenizer_config.json": b'{"eos_token": "<|endoftext|>"}'}
BERT_FILES = {"tokenizer_config.json": b'{"do_lower_case": true}', "vocab.txt": b"[PAD]\n[UNK]\na\n",
              "tokenizer.json": b'{"model": {}}'}


def write_store(root: Path, dependencies: Sequence[str] = ("qwen2", "bert-base-uncased:tokenizer"), *,
                dtype: str = "float32"):
    """A store whose files are stand-in bytes, with its manifest written by the harness's own code."""
    from harness.tasks import models

    root.mkdir(parents=True, exist_ok=True)
    for name in dependencies:
        dep = models.dependency(name)
        folder = root / dep.repo
        folder.mkdir(parents=True, exist_ok=True)
        files = QWEN_FILES if name == "qwen2" else BERT_FILES
        for file, data in files.items():
            if data is None:
                data = json.dumps({"model_type": "qwen2", "dtype": dtype}).encode()
            (folder / file).write_bytes(data)
    return models.write_manifest(root, dependencies, origin="local")


def lay_out_data(root: Path, names: Sequence[str], *, marker: bool = True) -> Path:
    """`<root>/<task>/` with one empty shard per pattern X-ARES globs, and the ready marker."""
    from harness.tasks.registry import load_registry

    registry = load_registry()
    for name in names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for pattern in registry.get(name).audio_tar_globs:
            (folder / pattern.replace("*", "-000000")).write_bytes(b"")
        if marker:
            (folder / ".audio_tar_ready").write_bytes(b"")
    return root
