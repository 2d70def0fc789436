"""Which submissions an export holds and which image each runs in (`aecc export kubernetes`).

Kept apart from rendering because it is the only part that reads submissions (through intake) or
asks an engine anything: rendering is a pure function of its result, and the bulk inbox can put its
own collection in front of it. The image tags must be the ones `aecc validate`/`aecc score` build,
so they are computed with the harness's own layer functions, never restated here.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness import paths
from harness.errors import IntakeError, UsageError
from harness.stages.intake import Submission, intake

__all__ = ["UNRESOLVED", "ExportImage", "TagSource", "collect_submissions", "expand_sources", "pull_ref",
           "resolve_images"]

#: the tag written where the submission image's tag cannot be computed (no root image id)
UNRESOLVED = "unresolved"

_ROOT_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


class TagSource(str, enum.Enum):
    """Where a submission image's tag came from: it hashes the root image's id, which only an engine
    that built (or will build) the image knows."""

    ROOT_ID = "root-id"  # computed offline from --root-id
    ENGINE = "engine"  # the root image id read from the local engine
    UNRESOLVED = "unresolved"  # neither: a placeholder tag that no registry will have


@dataclasses.dataclass(frozen=True)
class ExportImage:
    """A submission and the image the harness builds for it, as the export names it (the image itself
    is `harness.stages.build.SubmissionImage`, which only a build returns)."""

    submission: Submission
    torch_version: str
    local_ref: str  # aecc/submission:<sha12>-<hash>, as `docker images` names it
    tag_source: TagSource
    built_here: bool | None = None  # None: not asked (no engine consulted)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag_source", TagSource(self.tag_source))

    @property
    def short(self) -> str:
        return self.submission.sha256[:12]


def expand_sources(sources: Iterable[Path | str]) -> list[Path]:
    """ZIPs and submission folders as given; a folder holding `*.zip` files and no `*.py` at its top
    is an inbox, and each of its ZIPs (sorted) is a submission.

    Raises:
        UsageError: a path that does not exist, or nothing to export.
    """
    found: list[Path] = []
    for raw in sources:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{path} does not exist", expected="a ZIP file, a submission folder or a folder of ZIPs",
                             found="missing", fix="check the path")
        if path.is_dir():
            top = [p for p in path.iterdir() if p.is_file()]
            zips = sorted(p for p in top if p.suffix.lower() == ".zip")
            if zips and not any(p.suffix == ".py" for p in top):
                found.extend(zips)
                continue
        found.append(path)
    if not found:
        raise UsageError("no submissions to export", expected="at least one ZIP or submission folder",
                         found="an empty list", fix="name the inbox: aecc export kubernetes inbox/ --out k8s/")
    return found


def collect_submissions(sources: Sequence[Path | str], *, store: Path | None = None) -> list[Submission]:
    """The submissions named by `sources`, each through intake, deduplicated by content.

    One small function so that the bulk inbox (e-mails, per-sender folders) can replace it.

    Raises:
        IntakeError: a submission intake refuses, named by its path; nothing is exported.
        UsageError: a missing path, or nothing to export.
    """
    store = Path(store) if store is not None else paths.subdir("store")
    found: dict[str, Submission] = {}
    for source in expand_sources(sources):
        try:
            submission = intake(source, store)
        except IntakeError as exc:
            raise IntakeError(f"{source}: {exc.summary}", expected=exc.expected, found=exc.found,
                              fix=(exc.fix or "fix the submission") + "; or leave it out of the export "
                                  "(nothing was written)") from exc
        found.setdefault(submission.sha256, submission)
    return list(found.values())


def resolve_images(submissions: Sequence[Submission], *, root_id: str | None = None, client: Any = None,
                   resolve_before: str | None = None) -> tuple[ExportImage, ...]:
    """The image each submission runs in, named as `aecc validate`/`aecc score` build it.

    The tag hashes the root image's id (`harness.layers.model.image_ref`): given `root_id`
    (`docker image inspect --format '{{.Id}}' debian:bookworm-slim` on the build machine) it is
    computed offline; given a `client`, the root is read from that engine (nothing is built, and
    whether the image is there is recorded); with neither, the tag is `<sha12>-unresolved`.
    `resolve_before` is part of the tag: pass what the images were built with (`--resolve-before`).

    Raises:
        UsageError: a malformed root id, or an engine without a root image.
        IntakeError: a submission's torch requirement the harness cannot build.
    """
    from harness.layers.model import image_ref
    from harness.stages.build import (
        SUBMISSION_REPO,
        submission_layer,
        torch_version_for,
    )

    if root_id is not None and not _ROOT_ID.fullmatch(root_id):
        raise UsageError(f"--root-id {root_id!r} is not an image id", expected="sha256:<64 hex digits>",
                         found=root_id, fix="on the build machine: docker image inspect --format '{{.Id}}' "
                                            "debian:bookworm-slim (or aecc/rootfs:bookworm where it was bootstrapped)")
    images = []
    for submission in submissions:
        try:
            torch = torch_version_for(submission)
        except IntakeError as exc:
            raise IntakeError(f"submission {submission.sha256[:12]}: {exc.summary}", expected=exc.expected,
                              found=exc.found, fix=exc.fix) from exc
        layer = submission_layer(submission, torch, resolve_before)
        built = None
        if root_id is not None:
            ref, source = image_ref(layer, root_id), TagSource.ROOT_ID
        elif client is not None:
            from harness.layers.build import current_ref

            ref, source = current_ref(client, layer), TagSource.ENGINE
            if ref is None:
                raise UsageError("the engine has no root image to compute image tags from",
                                 expected="debian:bookworm-slim or aecc/rootfs:bookworm in the engine",
                                 found="neither", fix="run `aecc images build` there, or pass --root-id")
            built = _image_exists(client, ref)
        else:
            ref, source = f"{SUBMISSION_REPO}:{layer.tag_prefix}{UNRESOLVED}", TagSource.UNRESOLVED
        images.append(ExportImage(submission, torch, ref, source, built))
    return tuple(images)


def _image_exists(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def pull_ref(local_ref: str, registry: str | None) -> str:
    """The reference a node pulls: the local one under the registry prefix, if any."""
    return f"{registry.rstrip('/')}/{local_ref}" if registry else local_ref
