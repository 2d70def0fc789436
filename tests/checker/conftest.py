"""Fixtures of the checker's tests: the runtime image the container tests run the working checker in,
and a plain Python with torch for the in-place run (`python -m checker`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING_INPUTS = ("pyproject.toml", "README.md", "checker", "harness")


@pytest.fixture(scope="session")
def runtime_image(client) -> str:
    """The runtime image; one with the same dependencies but an older agent will do.

    The runtime tag hashes the `checker/` sources, so every edit to the checker changes it; as
    the working checker is mounted over the image's copy anyway, any runtime image built on the
    current `runtime-deps` layer runs exactly the code under test. AECC_TEST_RUNTIME_IMAGE names
    one explicitly (while the layers below are being rebuilt).
    """
    from harness.errors import HarnessError
    from harness.layers.build import current_ref, require_image
    from harness.layers.model import (
        LABEL_LAYER,
        LABEL_PARENT,
        runtime_deps_layer,
        runtime_layer,
    )

    if os.environ.get("AECC_TEST_RUNTIME_IMAGE"):
        return os.environ["AECC_TEST_RUNTIME_IMAGE"]
    try:
        return require_image(client, runtime_layer())
    except HarnessError:
        parent = current_ref(client, runtime_deps_layer())
        candidates = client.images.list(
            filters={"label": [f"{LABEL_LAYER}=runtime", f"{LABEL_PARENT}={parent}"]}
        )
        if not candidates:
            pytest.fail(f"no runtime image built on {parent}: run `aecc images build --target runtime`")
        newest = max(candidates, key=lambda im: im.attrs["Created"])
        return next(tag for tag in newest.tags if tag.startswith("aecc/runtime:"))


@pytest.fixture(scope="session")
def in_place_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Python with torch and this repository pip-installed, and nothing else of ours on its path.

    Removed at the end of the session: about 1 GB, and pytest keeps the last three sessions' tmp dirs.
    """
    if os.environ.get("AECC_TEST_IN_PLACE_PYTHON"):
        yield os.environ["AECC_TEST_IN_PLACE_PYTHON"]
        return
    base = tmp_path_factory.mktemp("in-place")
    venv, src = base / "venv", base / "src"
    src.mkdir()
    for name in PACKAGING_INPUTS:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        kw = {"ignore": shutil.ignore_patterns("__pycache__", "*.pyc")} if (REPO / name).is_dir() else {}
        copy(REPO / name, src / name, **kw)
    python = str(venv / "bin" / "python")
    steps = ([sys.executable, "-m", "venv", str(venv)],
             [python, "-m", "pip", "install", "-q", "torch==2.13.0"],
             [python, "-m", "pip", "install", "-q", str(src)])
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=900, cwd=base)
        assert proc.returncode == 0, f"{' '.join(step)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    yield python
    shutil.rmtree(base, ignore_errors=True)


