"""Where the harness keeps its state on the host: logs, locks, scratch, the submission store.

One root, `$AECC_HOME` (default `~/.aecc`), so an operator can put it on a large disk and a test can
point it at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    root = Path(os.environ.get("AECC_HOME") or Path.home() / ".aecc").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def subdir(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs() -> Path:
    return subdir("logs")


def scratch() -> Path:
    return subdir("tmp")
