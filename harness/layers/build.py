"""Building layers: a recipe run in a container of the parent image, then committed.


Layers are built by running their recipe (`images/<layer>/build.sh`) in a container of the parent
image and committing it, not with `docker build`, for two reasons measured or documented here:
BuildKit ignores memory and CPU limits (moby/buildkit#593) while a container obeys the sandbox
profile's; and the CA bundle and pip index options that builds need (corporate proxies) are bind
mounts of the build container, so they never enter a layer, its history or its config. The
committed config is written out in full, so nothing of the build container's environment leaks in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import fcntl
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import __version__, paths
from harness.errors import BuildFailed, ImageBuildError
from harness.layers import lock as lock_store
from harness.layers.lock import Lock
from harness.layers.model import (
    IMAGES_DIR,
    LABEL_BUILD_SECONDS,
    LABEL_BUILT,
    LABEL_FREEZE,
    LABEL_HARNESS_COMMIT,
    LABEL_HARNESS_VERSION,
    LABEL_IMAGE,
    LABEL_INPUTS,
    LABEL_LAYER,
    LABEL_LOCK,
    LABEL_LOCK_KEY,
    LABEL_LOCK_TEXT,
    LABEL_PARAMS,
    LABEL_PARENT,
    Layer,
    harness_commit,
    image_ref,
    inputs_hash,
    lock_key,
    pip_lib,
)
from harness.layers.options import SECRETS_DIR, BuildOptions
from harness.layers.rootfs import (
    PULL_REFERENCE,
    ROOTFS_REPO,
    SUITE,
    image_or_none,
    resolve_root,
)
from harness.sandbox.profiles import SandboxProfile, load_profile
from harness.stage_names import Stage
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Mount, Outcome, RunSpec

_BUILD_DIR = "/run/aecc-build"
_SOURCES_DIR = "/run/aecc-build-src"  # beside, not inside, the read-only recipe mount
#: locks of the trusted runtime chain, made on this project's machines and committed
COMMITTED_LOCKS = IMAGES_DIR / "locks"


class LockSource(str, enum.Enum):
    """Where the packages of a layer's build came from."""

    NONE = "none"  # the layer installs nothing with pip
    RESOLVED = "resolved"  # resolved against the index now; this build made the lock
    STORED = "stored"  # installed from the lock an earlier build on this machine made
    COMMITTED = "committed"  # installed from a lock committed to the repository (images/locks/)


@dataclasses.dataclass(frozen=True)
class LayerBuild:
    layer: str
    image: str
    cached: bool
    seconds: float
    log_path: Path | None = None
    lock_path: Path | None = None  # the layer's lock in the store ($AECC_HOME/pip-locks/)
    lock_digest: str | None = None
    lock_source: LockSource = LockSource.NONE

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "log_path": str(self.log_path) if self.log_path else None,
                "lock_path": str(self.lock_path) if self.lock_path else None, "lock_source": self.lock_source.value}


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One builder at a time per host: two harnesses building one tag would both pay for it."""
    with open(paths.subdir("locks") / "images.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _file_from_container(container: Any, path: str, cap: int) -> bytes | None:
    """A regular file the build left in the container, at most `cap` bytes; None when there is none.

    An untrusted build wrote it, so only a regular file is read (a link or a device is refused as absent)."""
    import docker.errors

    try:
        stream, _stat = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    data = b"".join(stream)[: 4 * cap + 4096]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            return None
        extracted = tar.extractfile(member)
        return extracted.read(cap) if extracted else None


def _freeze_from_container(container: Any, path: str) -> str:
    """The pip freeze the build left in the container, capped (it may be untrusted, and is bounded)."""
    data = _file_from_container(container, path, 256 * 1024)
    return data.decode("utf-8", "replace") if data else ""


def _lock_from_container(container: Any, layer: Layer, ref: str) -> Lock:
    """The lock of what this build installed, from pip's report in the container."""
    data = _file_from_container(container, layer.pip_report, 16 * 1024**2)
    try:
        report = json.loads(data.decode("utf-8")) if data else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        report = None
    if not isinstance(report, dict):
        raise ImageBuildError(f"layer {layer.name}: pip left no readable report at {layer.pip_report}",
                              expected="pip's installation report (pip install --report)",
                              found="absent" if data is None else "not JSON",
                              fix="the recipe must install through aecc_pip_install (images/lib.sh)")
    return Lock.from_report(report, layer=layer.name, lock_key=lock_key(layer),
                            resolve_before=layer.params.get("AECC_RESOLVE_BEFORE"))


def committed_lock_path(layer: Layer) -> Path:
    return COMMITTED_LOCKS / f"{layer.name}.lock"


def find_lock(layer: Layer, ref: str) -> tuple[Lock | None, LockSource]:
    """The lock a build of `layer` (tag `ref`) must install: this machine's, else a committed one whose
    key still matches the layer; (None, RESOLVED) when the build is to resolve afresh."""
    if layer.pip_report is None:
        return None, LockSource.NONE
    stored = lock_store.load(lock_store.store_path(ref))
    if stored is not None:
        return stored, LockSource.STORED
    committed = lock_store.load(committed_lock_path(layer))
    if committed is not None and committed.lock_key == lock_key(layer):
        return committed, LockSource.COMMITTED
    return None, LockSource.RESOLVED


def _build_one(
    client: Any,
    layer: Layer,
    parent_image: Any,
    ref: str,
    root_id: str,
    options: BuildOptions,
    profile: SandboxProfile,
    log: Callable[[str], None],
) -> LayerBuild:
    started = time.monotonic()
    log_path = paths.logs() / f"build-{layer.name}-{ref.split(':')[-1]}.log"
    lock, lock_source = find_lock(layer, ref)
    made: list[Lock] = []
    with tempfile.TemporaryDirectory(prefix="build-", dir=paths.scratch()) as tmp:
        build_dir = Path(tmp) / "build"
        secrets_dir = Path(tmp) / "secrets"
        build_dir.mkdir()
        # Trusted builds run as root and keep index credentials private; an untrusted build runs as
        # uid 10001 and must read its pip.conf (credentials already stripped) and the public CA bundle.
        secrets_dir.mkdir(mode=0o755 if layer.untrusted else 0o700)
        secrets_dir.chmod(0o755 if layer.untrusted else 0o700)
        (build_dir / "recipe.sh").write_text(layer.recipe)
        (build_dir / "lib.sh").write_text(pip_lib())
        for name, content in layer.files.items():
            (build_dir / name).write_text(content)
        env_lines = [f"export {k}={_shell_quote(v)}" for k, v in sorted(layer.params.items())]
        env_lines += [
            "export DEBIAN_FRONTEND=noninteractive",
            f"export PIP_CONFIG_FILE={SECRETS_DIR}/pip.conf",
        ]
        if "constraints.txt" in layer.files:
            env_lines.append(f"export AECC_CONSTRAINTS={_BUILD_DIR}/constraints.txt")
        if layer.pip_report is not None:
            env_lines.append(f"export AECC_PIP_REPORT={_shell_quote(layer.pip_report)}")
        if lock is not None:
            (build_dir / "lock.txt").write_text(lock.text())
            env_lines.append(f"export AECC_LOCK={_BUILD_DIR}/lock.txt")
            log(f"{layer.name}: installing the {lock_source.value} lock ({len(lock.packages)} packages, "
                f"resolved {lock.resolved_at})")
        (build_dir / "env.sh").write_text("\n".join(env_lines) + "\n")
        (secrets_dir / "pip.conf").write_text(options.pip_conf(credentials=not layer.untrusted))
        for secret in secrets_dir.iterdir():
            secret.chmod(0o644 if layer.untrusted else 0o600)
        if options.ca_bundle is not None:
            shutil.copyfile(options.ca_bundle, secrets_dir / "ca.pem")
        mounts = [Mount(build_dir, _BUILD_DIR), Mount(secrets_dir, SECRETS_DIR)]
        for key, src in sorted(layer.sources.items()):
            mounts.append(Mount(src.resolve(), f"{_SOURCES_DIR}/{key}"))
        freeze = layer.freeze_path
        script = (
            # The recipe is sourced after lib.sh in one shell, so it can call aecc_pip_install.
            f". {_BUILD_DIR}/env.sh && /bin/sh -eux -c '. {_BUILD_DIR}/lib.sh && . {_BUILD_DIR}/recipe.sh' && "
            f"mkdir -p {os.path.dirname(freeze)} && ({layer.freeze_command} 2>/dev/null || true) > {freeze}"
        )
        if layer.parent is None:
            # Before the base layer there is no venv: the freeze step must not need one.
            script = script.replace("python -m pip", "/opt/venv/bin/python -m pip")
        spec = RunSpec(
            stage=Stage.BUILD,
            image=parent_image.id,
            command=("/bin/sh", "-c", script),
            mounts=tuple(mounts),
            trusted_build=not layer.untrusted,
            writable_root=layer.untrusted,
        )
        parent_config = parent_image.attrs.get("Config") or {}
        parent_env = {e.split("=", 1)[0]: e.split("=", 1)[1] for e in parent_config.get("Env") or [] if "=" in e}
        image_env = {**parent_env, **layer.env}
        labels = {
            LABEL_IMAGE: "1",
            LABEL_LAYER: layer.name,
            LABEL_INPUTS: inputs_hash(layer, root_id),
            LABEL_PARENT: image_ref(layer.parent, root_id) if layer.parent else f"root@{root_id}",
            LABEL_PARAMS: json.dumps(dict(layer.params), sort_keys=True),
            LABEL_HARNESS_VERSION: __version__,
            LABEL_HARNESS_COMMIT: harness_commit(),
            LABEL_BUILT: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        repository, tag = ref.rsplit(":", 1)

        too_big: list[int] = []

        def commit(container: Any) -> None:
            if container.attrs["State"].get("ExitCode") != 0:
                return
            if layer.untrusted:
                # What the build wrote is the size of its writable layer; an untrusted build may
                # not leave more on the host's disk than the profile allows.
                listed = client.api.containers(all=True, size=True, filters={"id": container.id})
                written = int((listed[0].get("SizeRw") if listed else 0) or 0)
                if written > profile.disk_cap_bytes:
                    too_big.append(written)
                    return
            labels[LABEL_FREEZE] = _freeze_from_container(container, layer.freeze_path)
            labels[LABEL_BUILD_SECONDS] = f"{time.monotonic() - started:.1f}"
            if layer.pip_report is not None:
                built = _lock_from_container(container, layer, ref)
                if lock is not None and built.digest != lock.digest:
                    raise ImageBuildError(f"layer {layer.name}: the build installed other packages than its lock",
                                          expected=f"the lock's set (sha256 {lock.digest[:16]})",
                                          found=f"sha256 {built.digest[:16]}", log_path=log_path)
                made.append(lock or built)
                labels[LABEL_LOCK] = made[0].digest
                labels[LABEL_LOCK_KEY] = made[0].lock_key
                labels[LABEL_LOCK_TEXT] = made[0].text()
            # The whole config is given: the engine would otherwise merge the build container's
            # own config (its command, the run's owner labels) into the image.
            container.commit(
                repository=repository,
                tag=tag,
                message=f"aecc layer {layer.name}",
                conf={
                    "Env": [f"{k}={v}" for k, v in image_env.items()],
                    "Cmd": ["/bin/bash"],
                    "Entrypoint": None,
                    "User": "10001:10001",
                    "WorkingDir": layer.workdir,
                    "Labels": {
                        **labels,
                        # Keys the engine would copy from the build container; blanked on purpose.
                        **{k: "" for k in _container_only_labels()},
                    },
                },
            )

        log(f"building {ref} ({layer.name}); log: {log_path}")
        result = run_stage(client, profile, spec, log_path, before_remove=commit,
                           watch=_layer_size_watch(profile.disk_cap_bytes) if layer.untrusted else None)
        if too_big and result.outcome is Outcome.OK:
            too_large = dict(expected=f"at most {profile.disk_cap_bytes} bytes written (profile disk_cap)",
                             found=f"{too_big[0]} bytes",
                             fix="install less: large weights belong in the fetch stage's cache, not in the image",
                             log_path=log_path)
            if layer.untrusted:
                raise BuildFailed("the submission's requirements install too much (the layer is too large)",
                                  outcome=Outcome.OUTPUT_LIMIT.value, **too_large)
            raise ImageBuildError(f"building layer {layer.name} failed (the layer is too large)", **too_large)
    if result.outcome is not Outcome.OK:
        tail = result.log_tail(1500).strip()[-1500:] or result.detail
        if layer.untrusted and result.outcome.is_submission_failure:
            # The participant's install failed in its own sandbox: their failure, typed here where it
            # is detected. An engine that died under the build stays an infrastructure error below.
            torch = layer.params.get("AECC_TORCH_VERSION", "the layer's torch")
            raise BuildFailed(
                "the submission's requirements did not install in the build sandbox",
                outcome=result.outcome.value,
                expected=f"`pip install -r requirements.txt` to succeed on top of torch {torch}",
                found=f"{result.outcome.value}: {tail}",
                fix="make requirements.txt installable from PyPI for Python 3.11 (try it in a fresh venv)",
                log_path=log_path,
            )
        raise ImageBuildError(
            f"building layer {layer.name} failed ({result.outcome.value}: {result.detail})",
            expected="the recipe images/" + layer.name.split("-")[0] + "/build.sh to exit 0",
            found=tail,
            fix="read the log; for TLS errors pass --ca-bundle, for an unreachable index --pip-index-url",
            log_path=log_path,
        )
    lock_path = None
    if made:
        lock_path = lock_store.store_path(ref)
        if lock_source is not LockSource.STORED:
            lock_store.save(lock_path, made[0])
    return LayerBuild(layer.name, ref, cached=False, seconds=round(time.monotonic() - started, 1), log_path=log_path,
                      lock_path=lock_path, lock_digest=made[0].digest if made else None, lock_source=lock_source)


def _layer_size_watch(cap: int) -> Callable[[Any], tuple[Outcome, str] | None]:
    """A run_stage watch that kills an untrusted build whose writable layer passes `cap`.

    It measures the overlay upper directory on the host (a local engine), every few seconds since a
    walk of a large install is not free; the commit-time size check catches the last few seconds.
    """
    from harness.sandbox.watch import directory_size

    state: dict[str, Any] = {"next": 0.0}

    def watch(container: Any) -> tuple[Outcome, str] | None:
        now = time.monotonic()
        if now < state["next"]:
            return None
        state["next"] = now + 3.0
        upper = (container.attrs.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
        if upper and Path(upper).is_dir():
            size = directory_size(Path(upper))
            if size > cap:
                return Outcome.OUTPUT_LIMIT, f"killed: the build wrote {size} B, over the disk cap of {cap} B"
        return None

    return watch


def _container_only_labels() -> tuple[str, ...]:
    from harness.sandbox import engine as eng

    return (eng.LABEL_MANAGED, eng.LABEL_OWNER_PID, eng.LABEL_OWNER_HOST, eng.LABEL_OWNER_START,
            eng.LABEL_STAGE, eng.LABEL_RUN)


def _shell_quote(value: str) -> str:
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def build_chain(
    client: Any,
    target: Layer,
    options: BuildOptions | None = None,
    *,
    log: Callable[[str], None] = print,
) -> list[LayerBuild]:
    """Build `target` and every missing layer below it; unchanged layers are cache hits.

    Returns:
        One LayerBuild per layer in the chain, bottom first, saying whether it was cached.

    Raises:
        BuildFailed: an untrusted layer (a submission's requirements) failed in its sandbox: the
            submission's failure (the log is named).
        ImageBuildError: a trusted recipe failed (the log is named), the root image cannot be had,
            or the engine failed under an untrusted build: infrastructure.
    """
    options = options or BuildOptions.from_environment()
    profile = load_profile(options.profile)
    submission_profile = load_profile(options.submission_profile) if options.submission_profile else profile
    results: list[LayerBuild] = []
    with _build_lock():
        root = resolve_root(client, options, log)
        parent_image = root
        for layer in target.chain():
            started = time.monotonic()
            ref = image_ref(layer, root.id)
            existing = None if options.force else image_or_none(client, ref)
            if existing is not None:
                digest = (existing.labels or {}).get(LABEL_LOCK)
                stored = lock_store.store_path(ref)
                text = (existing.labels or {}).get(LABEL_LOCK_TEXT)
                if digest and text and not stored.is_file():
                    # Built elsewhere (another AECC_HOME, a loaded image): its lock is in its labels.
                    lock_store.save(stored, Lock.parse(text, origin=f"{ref} label {LABEL_LOCK_TEXT}"))
                results.append(LayerBuild(layer.name, ref, cached=True, seconds=round(time.monotonic() - started, 2),
                                          lock_path=stored if digest and stored.is_file() else None,
                                          lock_digest=digest,
                                          lock_source=LockSource.STORED if digest else LockSource.NONE))
                parent_image = existing
                continue
            results.append(_build_one(client, layer, parent_image, ref, root.id, options,
                                      submission_profile if layer.untrusted else profile, log))
            parent_image = client.images.get(ref)
    return results


def current_ref(client: Any, layer: Layer) -> str | None:
    """The tag `layer` has now, or None when its root file system is not here yet."""
    root = image_or_none(client, PULL_REFERENCE) or image_or_none(client, f"{ROOTFS_REPO}:{SUITE}")
    return image_ref(layer, root.id) if root is not None else None


def require_image(client: Any, layer: Layer) -> str:
    """The reference of a built layer; raises ImageBuildError telling how to build it if absent."""
    ref = current_ref(client, layer)
    if ref is None or image_or_none(client, ref) is None:
        raise ImageBuildError(
            f"image for layer {layer.name} is not built",
            expected=ref or f"{layer.repository}:<hash>",
            found="absent",
            fix=f"run `aecc images build --target {layer.name}` (or `make images`)",
        )
    return ref


def commit_locks(client: Any, target: Layer) -> list[Path]:
    """Copy the locks of `target`'s built trusted chain into `images/locks/` (for maintainers: what a
    fresh machine then installs instead of resolving). Untrusted layers are never committed.

    Raises:
        ImageBuildError: a layer of the chain is not built here, or was built without a lock.
    """
    written = []
    root = resolve_root(client, BuildOptions.from_environment(), log=lambda m: None)
    for layer in target.chain():
        if layer.pip_report is None or layer.untrusted:
            continue
        ref = image_ref(layer, root.id)
        lock = lock_store.load(lock_store.store_path(ref))
        if lock is None:
            raise ImageBuildError(f"layer {layer.name} has no lock on this machine", expected=f"a lock for {ref}",
                                  found="none", fix=f"run `aecc images build --target {target.name}` first")
        path = committed_lock_path(layer)
        lock_store.save(path, dataclasses.replace(lock, lock_key=lock_key(layer)))
        written.append(path)
    return written
