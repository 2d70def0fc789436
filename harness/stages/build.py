"""Build stage: a submission becomes an image, `aecc/submission:<sha12>-<hash>`.

The image is the torch layer the submission asks for (`torch==X` in its requirements, else the
runtime's torch) plus its own files and requirements, installed by its own `pip install` in the
sandbox's build stage: uid 10001, all capabilities dropped, seccomp, memory and pids caps, the
stage's wall clock, network on (PyPI), index credentials withheld. The tag is keyed by the
submission's content, its parent and, when the organizers froze resolution, the instant
(`--resolve-before`), so validating the same ZIP twice builds once.

Reproducible on any day (issue 9): the install is constrained to the companion builds made for the
layer's torch (`harness.layers.companions`), a requirement that contradicts them is refused before
anything installs, and the first build's resolved set becomes the submission's lock, which every
rebuild installs exactly, hash-checked (`harness.layers.lock`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from harness.errors import BuildFailed, IntakeError
from harness.layers import companions
from harness.layers.build import LayerBuild, build_chain
from harness.layers.model import (
    BASE_ENV,
    CPU_INDEX_URL,
    IMAGES_DIR,
    RUNTIME_TORCH,
    Layer,
    TorchFlavour,
    torch_index_args,
    torch_layer,
)
from harness.layers.options import BuildOptions
from harness.stages.intake import Submission
from harness.stages.rejection import RejectReason, reject

__all__ = ["SUBMISSION_REPO", "BuildFailed", "SubmissionImage", "build_submission", "check_companions",
           "submission_layer", "torch_version_for"]

SUBMISSION_REPO = "aecc/submission"
SUBMISSION_REPORT = "/opt/submission/pip-report.json"


def torch_version_for(submission: Submission) -> str:
    """The torch a submission gets: its exact pin, else the runtime's when its specifier allows it.

    Raises:
        IntakeError: a torch specifier that the runtime's torch does not satisfy and that is not an
            exact pin (the harness builds one torch layer per exact version, not ranges).
    """
    reqs = submission.requirements
    if reqs.torch_pin:
        return reqs.torch_pin
    default = RUNTIME_TORCH
    if reqs.torch_specifier and default not in SpecifierSet(reqs.torch_specifier):
        raise IntakeError(
            "requirements.txt asks for a torch range the harness cannot choose from",
            expected=f"torch=={default} (the runtime's), any range containing it, or an exact torch==X pin",
            found=f"torch{reqs.torch_specifier}",
            fix="pin the exact torch version your encoder was tested with, e.g. torch==2.2.1",
        )
    return default


def check_companions(submission: Submission, torch: str) -> None:
    """Refuse, before anything installs, a requirement on a companion build not made for `torch`.

    Raises:
        IntakeRejected (`requirement_companion`): naming the requirement, the torch, and the matching
            build, or saying that none was made for that torch.
    """
    table = companions.for_torch(torch)
    for line in submission.requirements.lines:
        req = Requirement(line.split(" --hash", 1)[0].strip())
        name = canonicalize_name(req.name)
        if name not in companions.NAMES:
            continue
        if not table.known:
            covered = companions.torch_versions()
            raise reject(RejectReason.REQUIREMENT_COMPANION, "requirements.txt",
                          f"{req} needs a {name} build made for torch {torch}, which the harness's table does "
                          f"not cover ({covered[0]}..{covered[-1]}); pin one of those torch versions")
        matching = table.version(name)
        if matching is None:
            raise reject(RejectReason.REQUIREMENT_COMPANION, "requirements.txt",
                          f"{req}: no {name} was made for torch {torch}; pin a torch that has one, or drop {name}")
        if req.specifier and matching not in req.specifier:
            raise reject(RejectReason.REQUIREMENT_COMPANION, "requirements.txt",
                          f"{req} does not match torch {torch}: the {name} built for torch {torch} is {matching}; "
                          f"pin {name}=={matching} (or leave the version out)")


def submission_layer(submission: Submission, torch_version: str, resolve_before: str | None = None,
                     flavour: TorchFlavour | str = TorchFlavour.CUDA, cpu_index_url: str = CPU_INDEX_URL) -> Layer:
    params = {"AECC_TORCH_VERSION": torch_version, "AECC_SUBMISSION_SHA256": submission.sha256}
    if resolve_before:
        # An input of the tag: a resolution frozen at another instant is another image.
        params["AECC_RESOLVE_BEFORE"] = resolve_before
    if TorchFlavour(flavour) is TorchFlavour.CPU:
        # Companions must be the +cpu builds too: the CPU index stays visible to the submission's install.
        params["AECC_PIP_INDEX_ARGS"] = torch_index_args(TorchFlavour.CPU, cpu_index_url)
    return Layer(
        name=f"submission-{submission.sha256[:12]}",
        repository=SUBMISSION_REPO,
        recipe=(IMAGES_DIR / "submission" / "build.sh").read_text(),
        parent=torch_layer(torch_version, flavour, cpu_index_url),
        params=params,
        sources={"submission": submission.root},
        env={
            "PATH": "/opt/submission/venv/bin:" + BASE_ENV["PATH"],
            "VIRTUAL_ENV": "/opt/submission/venv",
        },
        files={"constraints.txt": companions.for_torch(torch_version).constraints()},
        tag_prefix=f"{submission.sha256[:12]}-",
        untrusted=True,
        freeze_path="/opt/submission/pip-freeze.txt",
        freeze_command="/opt/venv/bin/pip --python /opt/submission/venv/bin/python freeze --all",
        workdir="/opt/submission/src",
        pip_report=SUBMISSION_REPORT,
    )


@dataclasses.dataclass(frozen=True)
class SubmissionImage:
    image: str
    torch_version: str
    layers: tuple[LayerBuild, ...]
    torch_flavour: str = "cuda"

    @property
    def cached(self) -> bool:
        return self.layers[-1].cached

    @property
    def lock(self) -> LayerBuild:
        """The submission layer's build, with its lock's path, digest and where it came from."""
        return self.layers[-1]

    @property
    def lock_path(self) -> Path | None:
        return self.layers[-1].lock_path

    @property
    def lock_digest(self) -> str | None:
        return self.layers[-1].lock_digest


def build_submission(
    client: Any,
    submission: Submission,
    options: BuildOptions | None = None,
    *,
    log: Callable[[str], None] = print,
) -> SubmissionImage:
    """Build (or find) the submission's image.

    Raises:
        IntakeError: a torch range or a companion requirement the harness cannot build (before any work).
        BuildFailed: its requirements did not install (log named): the submission's failure.
        ImageBuildError: a trusted layer below it failed: infrastructure.
    """
    version = torch_version_for(submission)
    check_companions(submission, version)
    options = options or BuildOptions.from_environment()
    layer = submission_layer(submission, version, options.resolve_before, options.torch_flavour,
                             options.torch_cpu_index_url)
    results = build_chain(client, layer, options, log=log)
    return SubmissionImage(image=results[-1].image, torch_version=version, layers=tuple(results),
                           torch_flavour=options.torch_flavour)
