"""Build stage: a submission becomes an image, `aecc/submission:<sha12>-<hash>`.

The image is the torch layer the submission asks for (`torch==X` in its requirements, else the
runtime's torch) plus its own files and requirements, installed by its own `pip install` in the
sandbox's build stage: uid 10001, all capabilities dropped, seccomp, memory and pids caps, the
stage's wall clock, network on (PyPI), index credentials withheld. The tag is keyed by the
submission's content and its parent, so validating the same ZIP twice builds once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from harness import images
from harness.errors import ImageBuildError, IntakeError, SubmissionError
from harness.intake import Submission
from harness.runner import Outcome

SUBMISSION_REPO = "aecc/submission"


class BuildFailed(SubmissionError):
    """The submission's own requirements did not install: the participant's to fix."""


def torch_version_for(submission: Submission) -> str:
    """The torch a submission gets: its exact pin, else the runtime's when its specifier allows it.

    Raises:
        IntakeError: a torch specifier that the runtime's torch does not satisfy and that is not an
            exact pin (the harness builds one torch layer per exact version, not ranges).
    """
    reqs = submission.requirements
    if reqs.torch_pin:
        return reqs.torch_pin
    default = images.RUNTIME_VERSIONS["torch"]
    if reqs.torch_specifier:
        from packaging.specifiers import SpecifierSet

        if default not in SpecifierSet(reqs.torch_specifier):
            raise IntakeError(
                "requirements.txt asks for a torch range the harness cannot choose from",
                expected=f"torch=={default} (the runtime's), any range containing it, or an exact torch==X pin",
                found=f"torch{reqs.torch_specifier}",
                fix="pin the exact torch version your encoder was tested with, e.g. torch==2.2.1",
            )
    return default


def submission_layer(submission: Submission, torch_version: str) -> images.Layer:
    return images.Layer(
        name=f"submission-{submission.sha256[:12]}",
        repository=SUBMISSION_REPO,
        recipe=(images.IMAGES_DIR / "submission" / "build.sh").read_text(),
        parent=images.torch_layer(torch_version),
        params={"AECC_TORCH_VERSION": torch_version, "AECC_SUBMISSION_SHA256": submission.sha256},
        sources={"submission": submission.root},
        env={
            "PATH": "/opt/submission/venv/bin:" + images.BASE_ENV["PATH"],
            "VIRTUAL_ENV": "/opt/submission/venv",
        },
        tag_prefix=f"{submission.sha256[:12]}-",
        untrusted=True,
        freeze_path="/opt/submission/pip-freeze.txt",
        freeze_command="/opt/venv/bin/pip --python /opt/submission/venv/bin/python freeze --all",
        workdir="/opt/submission/src",
    )


@dataclasses.dataclass(frozen=True)
class SubmissionImage:
    image: str
    torch_version: str
    layers: tuple[images.LayerBuild, ...]

    @property
    def cached(self) -> bool:
        return self.layers[-1].cached


def build_submission(
    client: Any,
    submission: Submission,
    options: images.BuildOptions | None = None,
    *,
    log: Callable[[str], None] = print,
) -> SubmissionImage:
    """Build (or find) the submission's image.

    Raises:
        BuildFailed: its requirements did not install (log named) — the submission's failure.
        ImageBuildError: a trusted layer below it failed — infrastructure.
    """
    version = torch_version_for(submission)
    layer = submission_layer(submission, version)
    try:
        results = images.build(client, layer, options, log=log)
    except ImageBuildError as exc:
        if getattr(exc, "layer", None) == layer.name:
            raise BuildFailed(
                "the submission's requirements did not install in the build sandbox",
                expected="`pip install -r requirements.txt` to succeed on top of torch " + version,
                found=f"{getattr(exc, 'outcome', Outcome.FAILED).value}: {exc.found}",
                fix="make requirements.txt installable from PyPI for Python 3.11 (try it in a fresh venv)",
                log_path=exc.log_path,
            ) from None
        raise
    return SubmissionImage(image=results[-1].image, torch_version=version, layers=tuple(results))
