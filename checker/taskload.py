"""Load an X-ARES task configuration the way X-ARES does, for an encoder known only by its attributes.

Task modules (`tasks/esc50_task.py` in the xares wheel, or an organizer's own file) define one
`<name>_config(encoder) -> TaskConfig`. Some read the encoder's `hop_size_in_ms` (frame labels),
none call it. The trusted stages never hold the participant's encoder, so they pass a stand-in
module with the three attributes the contract checker measured, named after the submission so that
X-ARES's per-class caches (`checkpoints/<ClassName>/`) can never be shared between submissions.

X-ARES finds its pretrained dependencies by hub id relative to the working directory; the score agent
links the verified, read-only model store there (`lay_out_models`) and keeps the Hugging Face
libraries offline (`force_offline`).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any


def stand_in_encoder(name: str, sampling_rate: int, output_dim: int, hop_size_in_ms: float) -> Any:
    import torch.nn as nn

    cls = type(name, (nn.Module,), {"forward": lambda self, x: x})
    encoder = cls()
    encoder.sampling_rate = int(sampling_rate)
    encoder.output_dim = int(output_dim)
    encoder.hop_size_in_ms = hop_size_in_ms
    return encoder


def config_function(module: str, function: str | None = None) -> Any:
    """`module` is a file path (`/tasks/tiny_task.py`) or a module name (`tasks.esc50_task`)."""
    if module.endswith(".py"):
        path = Path(module)
        spec = importlib.util.spec_from_file_location(f"aecc_task_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load task module {module}")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
    else:
        loaded = importlib.import_module(module)
    if function is None:
        names = [n for n in dir(loaded) if n.endswith("_config") and callable(getattr(loaded, n))]
        if len(names) != 1:
            raise ImportError(f"{module}: expected exactly one *_config function, found {names}")
        function = names[0]
    return getattr(loaded, function)


def load_config(module: str, function: str | None, encoder: Any) -> Any:
    return config_function(module, function)(encoder)


#: the variables that keep the Hugging Face libraries from trying the network (read at import time)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
MODELS_MANIFEST = "manifest.json"


def lay_out_models(store: Path | str, cwd: Path | str) -> list[str]:
    """Make X-ARES find the store's models from `cwd`, and return their repository ids.

    X-ARES passes hub ids to `from_pretrained` ("Qwen/Qwen2.5-0.5B", "google-bert/bert-base-uncased")
    and skips its own download when `./<id>` exists (`xares/utils.py` download_hf_model_to_local);
    transformers reads an existing `./<id>` directory as a local model. So each repository of the
    store (read from its manifest, which the host verified) gets a link `cwd/<org>/<name>` to its
    read-only folder; the process then runs with `cwd` as its working directory. Standard library
    only: the host tests it too.
    """
    import json
    import os

    store, cwd = Path(store), Path(cwd)
    manifest = json.loads((store / MODELS_MANIFEST).read_text())
    repos = []
    for model in manifest["models"]:
        repo = model["repo"]
        org, name = repo.split("/")
        if not org or not name or ".." in (org, name) or org.startswith(".") or name.startswith("."):
            raise ValueError(f"model store: unsafe repository id {repo!r}")
        link = cwd / org / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() and os.readlink(link) == str(store / org / name):
                repos.append(repo)
                continue
            raise FileExistsError(f"{link} exists and is not the store's link")
        link.symlink_to(store / org / name, target_is_directory=True)
        repos.append(repo)
    return repos


def force_offline() -> None:
    """The Hugging Face libraries read these when imported: set them before anything imports them
    (the container's environment has them too; this covers a run outside the harness)."""
    import os

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
