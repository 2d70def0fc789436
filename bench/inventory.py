"""What the bench's numbers were measured on, and what it leaves behind: image sizes (the `sizes`
group), the machine and versions recorded with every result, and the removal of the bench's own
throwaway submission images.

Kept apart from the scenarios because none of it is timed: it describes the run so that two results
can be compared (bench/compare.py), and it must never remove an image the bench did not make.
Mixed into `Bench` (bench/scenarios.py), whose `client`, `rec`, `runtime` and sets of images it reads.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

from bench.sampling import progress


class Inventory:
    """The sizes group, the machine and versions of a result, and the cleanup, as methods of `Bench`."""

    def sizes(self) -> None:
        from harness.layers.build import current_ref
        from harness.layers.model import (
            base_layer,
            runtime_deps_layer,
            runtime_layer,
            torch_layer,
        )

        refs = {"base": base_layer(), "torch": torch_layer(),
                "runtime_deps": runtime_deps_layer(), "runtime": runtime_layer()}
        sizes = {}
        for name, layer in refs.items():
            ref = current_ref(self.client, layer)
            try:
                sizes[name] = (ref, int(self.client.images.get(ref).attrs["Size"]))
            except Exception as exc:  # noqa: BLE001 - a missing layer is recorded, not fatal
                self.rec.error("sizes", f"image {ref}", str(exc))
        sub = sorted(self.submission_images)
        if not sub:
            sub_dir = self.throwaway("sizes")
            seconds, _ = self.validate_once(sub_dir, "sizes-validate", self.fresh_home("sizes"))
            sub = sorted(self.submission_images)
        if sub:
            sizes["submission"] = (sub[0], int(self.client.images.get(sub[0]).attrs["Size"]))
        for name, (ref, size) in sizes.items():
            metric = f"image_size_{name}_mb"
            self.rec.define(metric, "MB", f"size of {ref.rsplit(':', 1)[0]} as the engine reports it (shared layers "
                                          "counted in full)")
            self.rec.add(metric, size / 1e6)
        if "submission" in sizes and "torch" in sizes:
            self.rec.define("image_size_submission_layer_mb", "MB",
                            "what a submission image adds over its torch layer (the example: no requirements)")
            self.rec.add("image_size_submission_layer_mb", (sizes["submission"][1] - sizes["torch"][1]) / 1e6)
        self.rec.record("sizes", {k: {"ref": ref, "bytes": size} for k, (ref, size) in sizes.items()})
        progress("image sizes: " + ", ".join(f"{k} {v[1] / 1e9:.2f} GB" for k, v in sizes.items()))

    def machine(self) -> dict:
        import psutil

        cpu_model = "unknown"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        info = self.client.info()
        version = self.client.version()
        return {
            "hostname": platform.node(),
            "cpu_model": cpu_model,
            "cpus": os.cpu_count(),
            "ram_bytes": psutil.virtual_memory().total,
            "kernel": platform.release(),
            "os": platform.platform(),
            "python": platform.python_version(),
            "docker_server_version": version.get("Version"),
            "docker_storage_driver": info.get("Driver"),
            "docker_cgroup_version": info.get("CgroupVersion"),
            "load_average_start": [round(x, 2) for x in os.getloadavg()],
            "other_containers_running_at_start": len(self.client.containers.list()),
        }

    def versions(self) -> dict:
        from harness import __version__
        from harness.layers.model import harness_commit

        labels = self.client.images.get(self.runtime).labels or {}
        freeze = dict(line.split("==", 1) for line in labels.get("org.aecc.pip-freeze", "").splitlines()
                      if "==" in line)
        return {
            "harness": __version__,
            "harness_commit": harness_commit(),
            "runtime_image": self.runtime,
            "runtime_image_harness_commit": labels.get("org.aecc.harness-commit"),
            "torch": freeze.get("torch"),
            "torchaudio": freeze.get("torchaudio"),
            "xares": freeze.get("xares"),
        }

    # -- cleanup ---------------------------------------------------------------------------------

    def remove_throwaway_images(self) -> list[str]:
        """Only aecc/submission tags that start with the sha12 of a throwaway this bench made."""
        import docker.errors

        from harness.stages.build import SUBMISSION_REPO

        removed = []
        for image in self.client.images.list(name=SUBMISSION_REPO):
            for tag in image.tags:
                repo, _, name = tag.rpartition(":")
                if repo == SUBMISSION_REPO and name[:12] in self.throwaway_shas and name[12:13] == "-":
                    try:
                        self.client.images.remove(tag, noprune=False)
                        removed.append(tag)
                    except docker.errors.APIError as exc:
                        progress(f"could not remove {tag}: {exc}")
        return removed
