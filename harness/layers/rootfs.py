"""The image the base layer is built on: a pulled `debian:bookworm-slim`, or one made offline.

This project's machines reach no registry, so the root can be made with `debootstrap
--variant=minbase bookworm` and `docker import`: no registry, only a Debian mirror.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from harness import paths
from harness.errors import ImageBuildError
from harness.layers.model import LABEL_IMAGE, LABEL_LAYER
from harness.layers.options import DEFAULT_MIRROR, BuildOptions  # noqa: F401  (DEFAULT_MIRROR re-exported)

ROOTFS_REPO = "aecc/rootfs"
PULL_REFERENCE = "debian:bookworm-slim"
SUITE = "bookworm"


def image_or_none(client: Any, ref: str) -> Any:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def bootstrap_rootfs(client: Any, *, mirror: str = DEFAULT_MIRROR, log: Callable[[str], None] = print) -> Any:
    """debootstrap a minimal bookworm and import it as `aecc/rootfs:bookworm`; no registry needed.

    Raises:
        ImageBuildError: not root, no debootstrap, or debootstrap failed (its log is named).
    """
    if os.geteuid() != 0:
        raise ImageBuildError(
            "bootstrapping the base file system needs root",
            expected="uid 0 (debootstrap creates device nodes and chowns files)",
            found=f"uid {os.geteuid()}",
            fix="run `sudo aecc images bootstrap`, or make debian:bookworm-slim pullable and use --base-source pull",
        )
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "debootstrap is not installed",
            expected="debootstrap on PATH",
            found="none",
            fix="apt-get install debootstrap (scripts/engine-setup.sh does this)",
        )
    log_path = paths.logs() / f"bootstrap-{SUITE}-{int(time.time())}.log"
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=paths.scratch()))
    rootfs, tarball = work / "rootfs", work / "rootfs.tar"
    try:
        log(f"debootstrap --variant=minbase {SUITE} ({mirror}); log: {log_path}")
        with open(log_path, "wb") as out:
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if proc.returncode != 0:
            raise ImageBuildError(
                "debootstrap failed",
                expected="exit code 0",
                found=f"exit code {proc.returncode}",
                fix="check that the Debian mirror is reachable (--debian-mirror / AECC_DEBIAN_MIRROR)",
                log_path=log_path,
            )
        # apt's downloaded .debs are not part of a root file system.
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        client.api.import_image_from_file(
            str(tarball),
            repository=ROOTFS_REPO,
            tag=SUITE,
            changes=[f'LABEL {LABEL_IMAGE}="1" {LABEL_LAYER}="rootfs"', 'CMD ["/bin/bash"]'],
        )
        return client.images.get(f"{ROOTFS_REPO}:{SUITE}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def resolve_root(client: Any, options: BuildOptions, log: Callable[[str], None] = print) -> Any:
    """The image the base layer is built on.

    `auto` prefers what is already here (a pulled `debian:bookworm-slim`, then a bootstrapped
    rootfs), then tries a pull, then bootstraps; `pull` and `bootstrap` force one path.
    """
    import docker.errors

    if options.base_source in ("auto", "pull"):
        image = image_or_none(client, PULL_REFERENCE)
        if image is not None:
            return image
    if options.base_source in ("auto", "bootstrap"):
        image = image_or_none(client, f"{ROOTFS_REPO}:{SUITE}")
        if image is not None:
            return image
    pull_error = None
    if options.base_source in ("auto", "pull"):
        try:
            log(f"pulling {PULL_REFERENCE}")
            repo, tag = PULL_REFERENCE.split(":")
            return client.images.pull(repo, tag=tag)
        except docker.errors.APIError as exc:
            pull_error = str(exc)
            if options.base_source == "pull":
                raise ImageBuildError(
                    f"could not pull {PULL_REFERENCE}",
                    expected="a reachable container registry",
                    found=pull_error,
                    fix="use --base-source bootstrap (debootstrap, needs root and a Debian mirror)",
                ) from None
            log(f"pull failed ({pull_error.splitlines()[0][:120]}); bootstrapping offline instead")
    return bootstrap_rootfs(client, mirror=options.debian_mirror, log=log)
