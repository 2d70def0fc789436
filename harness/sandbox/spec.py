"""What the sandbox runs and what comes back: the stage's spec, its mounts and its outcome.

`Outcome` is read from the engine's state and the harness's own kills (`harness.sandbox.run`), never
from log text. A submission failure (`failed`, `oom`, `gpu_oom`, `timeout`, `output_limit`) and an
infrastructure failure (`infra_error`) are different outcomes, so no caller can record one as the other.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from harness.errors import UsageError
from harness.stage_names import Stage


class Outcome(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"  # non-zero exit: the work inside failed
    OOM = "oom"  # the kernel killed it at the host-memory cap
    GPU_OOM = "gpu_oom"  # the host saw it pass the GPU memory cap and killed it
    TIMEOUT = "timeout"  # the harness killed it at the stage's wall-clock limit
    OUTPUT_LIMIT = "output_limit"  # the harness killed it for writing more than its output cap
    INFRA_ERROR = "infra_error"  # the engine failed; not the submission's fault

    @property
    def is_submission_failure(self) -> bool:
        return self in (Outcome.FAILED, Outcome.OOM, Outcome.GPU_OOM, Outcome.TIMEOUT, Outcome.OUTPUT_LIMIT)

    @property
    def is_infra_failure(self) -> bool:
        return self is Outcome.INFRA_ERROR


@dataclasses.dataclass(frozen=True)
class Mount:
    """A bind mount; read-only unless the stage's policy allows writing and `read_only=False`."""

    source: Path
    target: str
    read_only: bool = True

    def __post_init__(self) -> None:
        if not Path(self.source).is_absolute():
            raise UsageError("mount source must be an absolute path", expected="/abs/path", found=str(self.source))
        if not Path(self.source).exists():
            raise UsageError(
                "mount source does not exist", expected="an existing file or directory", found=str(self.source)
            )
        if not self.target.startswith("/") or ".." in Path(self.target).parts:
            raise UsageError("mount target must be an absolute container path", expected="/abs/path", found=self.target)

    def to_docker(self) -> dict:
        return {"Type": "bind", "Source": str(self.source), "Target": self.target, "ReadOnly": self.read_only}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What to run: image, command, mounts and environment, for one stage.

    `trusted_build` is for the harness's own image builds only: root, writable root file system
    and the engine's default capabilities (apt needs them); the profile's memory, pids, log and
    wall-clock limits still apply. It is refused for every stage but `build`.
    """

    stage: Stage
    image: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    gpu_uuid: str | None = None
    workdir: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    trusted_build: bool = False
    writable_root: bool = False  # untrusted builds (a submission's pip install) write its layer
    wall_clock_s: float | None = None  # overrides the profile's stage limit (tests scale it down)
    cpu_shares: int | None = None  # relative CPU weight under contention (warm starts wait at low weight)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "mounts", tuple(self.mounts))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        if not self.command:
            raise UsageError("empty command", expected="a command to run in the container", found="[]")
        if not self.image:
            raise UsageError("no image given", expected="an image reference", found=repr(self.image))
        if self.trusted_build and self.stage is not Stage.BUILD:
            raise UsageError(
                "trusted_build is only for the build stage",
                expected="stage=build",
                found=f"stage={self.stage.value}",
            )
        if self.writable_root and self.stage is not Stage.BUILD:
            raise UsageError(
                "writable_root is only for the build stage",
                expected="stage=build",
                found=f"stage={self.stage.value}",
            )
        targets = [m.target for m in self.mounts]
        if len(targets) != len(set(targets)):
            raise UsageError("two mounts share a target", expected="distinct targets", found=", ".join(targets))


@dataclasses.dataclass(frozen=True)
class RunResult:
    stage: Stage
    image: str
    container_name: str
    outcome: Outcome
    exit_code: int | None
    oom_killed: bool
    duration_s: float
    log_path: Path
    log_bytes: int
    log_bytes_dropped: int
    detail: str = ""
    gpu_uuid: str | None = None
    peak_gpu_bytes: int | None = None
    peak_memory_bytes: int | None = None  # host-side, from the container's memory cgroup

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["stage"] = self.stage.value
        data["outcome"] = self.outcome.value
        data["log_path"] = str(self.log_path)
        return data

    def raise_for_infra(self) -> None:
        """Raise InfraError when the engine failed under this run: never the submission's failure."""
        if self.outcome.is_infra_failure:
            from harness.errors import InfraError

            raise InfraError(f"the {self.stage.value} stage could not run", found=self.detail, log_path=self.log_path)

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, self.log_bytes - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
