"""Where things are: the harness's own files in the checkout, and its state on the host (logs, locks,
scratch, the submission store).

One root, `$AECC_HOME` (default `~/.aecc`), so an operator can put it on a large disk and a test can
point it at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the checkout the harness runs from: its recipes, profiles and agent are files beside the package
REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"
AGENT_DIR = REPO_ROOT / "checker"
PROFILES_DIR = REPO_ROOT / "sandbox_profiles"


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
