"""Load an X-ARES task configuration the way X-ARES does, for an encoder known only by its attributes.

Task modules (`tasks/esc50_task.py` in the xares wheel, or an organizer's own file) define one
`<name>_config(encoder) -> TaskConfig`. Some read the encoder's `hop_size_in_ms` (frame labels),
none call it. The trusted stages never hold the participant's encoder, so they pass a stand-in
module with the three attributes the contract checker measured, named after the submission so that
X-ARES's per-class caches (`checkpoints/<ClassName>/`) can never be shared between submissions.
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
