"""What the harness has built: listing its images and pruning those nobody needs."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.layers.model import (
    LABEL_HARNESS_COMMIT,
    LABEL_IMAGE,
    LABEL_LAYER,
    LABEL_PARENT,
    Layer,
    image_ref,
    runtime_layer,
)
from harness.layers.rootfs import PULL_REFERENCE, ROOTFS_REPO, SUITE, image_or_none


@dataclasses.dataclass(frozen=True)
class ImageRow:
    reference: str
    layer: str
    image_id: str
    size_bytes: int
    created: str
    current: bool
    harness_commit: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _standard_layers() -> list[Layer]:
    return runtime_layer().chain()


def list_images(client: Any) -> list[ImageRow]:
    """Every image the harness made, marking those that are the current build of a standard layer."""
    current = set()
    root = image_or_none(client, PULL_REFERENCE) or image_or_none(client, f"{ROOTFS_REPO}:{SUITE}")
    if root is not None:
        current = {image_ref(layer, root.id) for layer in _standard_layers()}
        current |= {t for t in root.tags}
    rows = []
    for image in client.images.list(filters={"label": f"{LABEL_IMAGE}=1"}):
        labels = image.labels or {}
        for ref in image.tags or ["<none>"]:
            rows.append(
                ImageRow(
                    reference=ref,
                    layer=labels.get(LABEL_LAYER, "?"),
                    image_id=image.short_id,
                    size_bytes=int(image.attrs.get("Size", 0)),
                    created=str(image.attrs.get("Created", ""))[:19],
                    current=ref in current,
                    harness_commit=labels.get(LABEL_HARNESS_COMMIT, ""),
                )
            )
    return sorted(rows, key=lambda r: (r.layer, r.reference))


def prune(
    client: Any,
    *,
    everything: bool = False,
    keep: tuple[str, ...] = (),
    repositories: tuple[str, ...] | None = None,
) -> list[str]:
    """Remove harness images nobody needs, or all of them (`everything`).

    Needed: the current build of each standard layer, every submission image (a submission's build
    is its cache; `everything` or `repositories` including aecc/submission removes them), and any
    layer another remaining image was built on (a torch-2.2.1 layer under a template-pinned
    submission, say). `keep` names more references to spare; `repositories` limits the prune.
    Returns the references removed; an image a container still uses is left and not reported.
    """
    import docker.errors

    removed: list[str] = []
    while True:
        rows = [r for r in list_images(client) if r.reference != "<none>"]
        parents = {
            (client.images.get(r.reference).labels or {}).get(LABEL_PARENT, "") for r in rows
        }
        victims = []
        for row in rows:
            repository = row.reference.rsplit(":", 1)[0]
            if row.reference in keep or row.reference in removed:
                continue
            if repositories is not None and repository not in repositories:
                continue
            if not everything:
                is_submission = row.layer.startswith("submission-")
                explicit = repositories is not None and repository in repositories
                if row.current or row.reference in parents or (is_submission and not explicit):
                    continue
            victims.append(row.reference)
        progress = False
        for ref in victims:
            try:
                client.images.remove(ref, noprune=False)
                removed.append(ref)
                progress = True
            except docker.errors.APIError:
                pass
        if not progress:
            return removed
