"""`aecc export kubernetes`: the sandbox profile rendered as Kubernetes Jobs, one per submission stage
that runs submission code (fetch, check, encode).

Why a renderer and not a scheduler: on one machine the harness enforces its envelope itself (engine
flags, an NVML sampler, a wall-clock watcher, the `aecc-egress` bridge). In a cluster the same
envelope has to be stated to the kubelet, the CNI and the GPU device plugin, and each enforces only
what it supports. So the export only renders, from the same profile file the Docker sandbox reads
(no limit is written twice), and the README it writes says what the cluster must provide.

This module writes an export folder whole or not at all, and is the one callers import
(`harness.cli.export`, the tests); the work is done by, in order:

    harness.export.resolve    the submissions (through intake) and the image each runs in
    harness.export.spec       what an export is asked for, and the names its objects share
    harness.export.render     every manifest, in memory, and its YAML (how the profile maps: there)
    harness.export.readme     the README: what the cluster must provide, how to run the Jobs
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Sequence

from harness.errors import UsageError
from harness.export.render import Rendered, render, to_yaml
from harness.export.resolve import ExportImage, TagSource, collect_submissions, expand_sources, pull_ref, resolve_images
from harness.export.spec import K8S_VERSION, DataSource, DataVolume, ExportSpec, NetworkMode
from harness.layers.model import AGENT_DIR

__all__ = ["K8S_VERSION", "DataSource", "DataVolume", "ExportImage", "ExportSpec", "Exported", "NetworkMode",
           "Rendered", "TagSource", "collect_submissions", "expand_sources", "export_kubernetes", "pull_ref", "render",
           "resolve_images", "to_yaml"]


@dataclasses.dataclass(frozen=True)
class Exported:
    out: Path
    files: tuple[str, ...]
    images: tuple[ExportImage, ...]
    pushed_refs: tuple[str, ...]
    warnings: tuple[str, ...]


def export_kubernetes(spec: ExportSpec, images: Sequence[ExportImage], *, agent_dir: Path = AGENT_DIR
                      ) -> Exported:
    """Render and write the export to `spec.out`, all at once: a folder is never left half-written.

    Raises:
        UsageError: `spec.out` exists and is not an empty folder, or what `render` raises.
    """
    out = Path(spec.out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not empty", expected="a new or empty folder",
                         found="a file" if not out.is_dir() else "a folder with files",
                         fix="choose another --out, or remove the old export first")
    rendered = render(spec, images, agent_dir=agent_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, text in rendered.files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        os.replace(tmp, out)  # onto a missing or empty folder: one step
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Exported(out, tuple(rendered.files), rendered.images,
                    tuple(dict.fromkeys(pull_ref(i.local_ref, spec.registry) for i in rendered.images)),
                    rendered.warnings)
