"""Trusted images in layers, each tagged by a hash of everything it is made from.

    rootfs (debian:bookworm-slim pulled, or debootstrap + `docker import` offline)
      -> base (Python 3.11 venv, the sandbox user)
        -> torch-<version>
          -> runtime-deps (torchaudio, torchcodec, FFmpeg, xares)
            -> runtime (the in-container agent, `checker/`)

A layer's tag is `sha256(layer name, recipe text, parameters, the sources it copies, the parent's
tag)`, so building an unchanged layer is a look-up, and a changed input rebuilds that layer and
the ones above it, nothing below.

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
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

from harness import __version__, paths
from harness.errors import ImageBuildError, UsageError
from harness.profiles import SandboxProfile, Stage, load_profile
from harness.runner import Mount, Outcome, RunSpec, run_stage

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"
AGENT_DIR = REPO_ROOT / "checker"

#: label on every image the harness makes; distinct from the container label so that containers a
#: person starts from these images by hand are never taken for the harness's own leftovers
LABEL_IMAGE = "org.aecc.image"
LABEL_LAYER = "org.aecc.layer"
LABEL_INPUTS = "org.aecc.inputs-sha256"
LABEL_PARENT = "org.aecc.parent"
LABEL_PARAMS = "org.aecc.params"
LABEL_FREEZE = "org.aecc.pip-freeze"
LABEL_HARNESS_VERSION = "org.aecc.harness-version"
LABEL_HARNESS_COMMIT = "org.aecc.harness-commit"
LABEL_BUILT = "org.aecc.built-at"
LABEL_BUILD_SECONDS = "org.aecc.build-seconds"

ROOTFS_REPO = "aecc/rootfs"
PULL_REFERENCE = "debian:bookworm-slim"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"

RUNTIME_VERSIONS = MappingProxyType(
    {"torch": "2.11.0", "torchaudio": "2.11.0", "torchcodec": "0.17.0", "xares": "0.1.3"}
)

BASE_ENV = MappingProxyType(
    {
        "PATH": "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": "/opt/venv",
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
)

_BUILD_DIR = "/run/aecc-build"
_SECRETS_DIR = "/run/aecc-build-secrets"
_SOURCES_DIR = "/run/aecc-build-src"  # beside, not inside, the read-only recipe mount


@dataclasses.dataclass(frozen=True)
class Layer:
    """One image layer: a recipe run on top of its parent, plus the sources it copies in."""

    name: str
    repository: str
    recipe: str
    parent: "Layer | None"
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tag_prefix: str = ""
    #: untrusted layers (a submission's requirements) build as the sandbox user, hardened, and
    #: never see index credentials
    untrusted: bool = False
    freeze_path: str = "/opt/aecc/pip-freeze.txt"
    freeze_command: str = "python -m pip freeze --all"
    workdir: str = "/"

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "sources", MappingProxyType({k: Path(v) for k, v in self.sources.items()}))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        if not self.name or not self.repository:
            raise UsageError("a layer needs a name and a repository", expected="non-empty", found=repr(self))
        for key, path in self.sources.items():
            if not path.is_dir():
                raise UsageError(f"layer {self.name}: source {key!r} is not a directory", found=str(path))

    def chain(self) -> list["Layer"]:
        """This layer and its ancestors, bottom first."""
        chain, layer = [], self
        while layer is not None:
            chain.append(layer)
            layer = layer.parent
        return list(reversed(chain))


def _recipe(name: str) -> str:
    return (IMAGES_DIR / name / "build.sh").read_text()


def base_layer() -> Layer:
    return Layer(name="base", repository="aecc/base", recipe=_recipe("base"), parent=None, env=BASE_ENV)


def torch_layer(version: str = RUNTIME_VERSIONS["torch"]) -> Layer:
    return Layer(
        name=f"torch-{version}",
        repository="aecc/torch",
        recipe=_recipe("torch"),
        parent=base_layer(),
        params={"AECC_TORCH_VERSION": version},
        tag_prefix=f"{version}-",
    )


def runtime_deps_layer(versions: Mapping[str, str] = RUNTIME_VERSIONS) -> Layer:
    return Layer(
        name="runtime-deps",
        repository="aecc/runtime-deps",
        recipe=_recipe("runtime-deps"),
        parent=torch_layer(versions["torch"]),
        params={f"AECC_{k.upper()}_VERSION": v for k, v in sorted(versions.items())},
    )


def runtime_layer(versions: Mapping[str, str] = RUNTIME_VERSIONS) -> Layer:
    return Layer(
        name="runtime",
        repository="aecc/runtime",
        recipe=_recipe("runtime"),
        parent=runtime_deps_layer(versions),
        sources={"checker": AGENT_DIR},
    )


def named_layer(name: str) -> Layer:
    """The standard layer called `name` (`base`, `torch`, `torch-<version>`, `runtime-deps`, `runtime`)."""
    if name == "base":
        return base_layer()
    if name == "torch":
        return torch_layer()
    if name.startswith("torch-"):
        return torch_layer(name[len("torch-") :])
    if name == "runtime-deps":
        return runtime_deps_layer()
    if name == "runtime":
        return runtime_layer()
    raise UsageError(
        f"unknown image layer {name!r}",
        expected="base, torch, torch-<version>, runtime-deps or runtime",
        found=name,
    )


def tree_hash(root: Path) -> str:
    """sha256 over the relative paths, executable bits and contents of a source tree.

    Byte-compiled caches are left out: they change with the Python that touched the tree, not
    with the source.
    """
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or path.is_dir():
            continue
        digest.update(str(rel).encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def layer_inputs(layer: Layer, root_id: str) -> dict:
    """Everything a layer is made from; its sha256 is the layer's tag."""
    return {
        "layer": layer.name,
        "recipe_sha256": hashlib.sha256(layer.recipe.encode()).hexdigest(),
        "params": dict(sorted(layer.params.items())),
        "env": dict(sorted(layer.env.items())),
        "sources": {k: tree_hash(v) for k, v in sorted(layer.sources.items())},
        "parent": image_ref(layer.parent, root_id) if layer.parent else f"root@{root_id}",
        "untrusted": layer.untrusted,
        "freeze_path": layer.freeze_path,
        "freeze_command": layer.freeze_command,
        "workdir": layer.workdir,
    }


def inputs_hash(layer: Layer, root_id: str) -> str:
    blob = json.dumps(layer_inputs(layer, root_id), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def image_ref(layer: Layer, root_id: str) -> str:
    return f"{layer.repository}:{layer.tag_prefix}{inputs_hash(layer, root_id)[:16]}"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How builds reach the outside: CA bundle, pip index options, where the base comes from.

    None of these values enters an image: the bundle and a generated pip.conf are bind-mounted
    into the build container only.
    """

    ca_bundle: Path | None = None
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    pip_trusted_hosts: tuple[str, ...] = ()
    base_source: str = "auto"  # auto | pull | bootstrap
    debian_mirror: str = DEFAULT_MIRROR
    force: bool = False
    profile: str = "cpu"  # the envelope of trusted layer builds
    #: the envelope of untrusted (submission) layer builds: validate/score pass the run's profile
    submission_profile: str | None = None

    def __post_init__(self) -> None:
        if self.base_source not in ("auto", "pull", "bootstrap"):
            raise UsageError(
                "unknown base source", expected="auto, pull or bootstrap", found=repr(self.base_source)
            )
        if self.ca_bundle is not None and not Path(self.ca_bundle).is_file():
            raise UsageError(
                "CA bundle not found",
                expected="a PEM file of trusted certificates",
                found=str(self.ca_bundle),
                fix="pass --ca-bundle with an existing file, or set AECC_CA_BUNDLE",
            )

    @classmethod
    def from_environment(cls, **overrides: Any) -> "BuildOptions":
        """Defaults from AECC_* variables, then pip's own PIP_CERT / the system bundle."""
        env = os.environ
        ca = env.get("AECC_CA_BUNDLE") or env.get("PIP_CERT") or env.get("SSL_CERT_FILE")
        if not ca and Path("/etc/ssl/certs/ca-certificates.crt").is_file():
            ca = "/etc/ssl/certs/ca-certificates.crt"
        values: dict[str, Any] = {
            "ca_bundle": Path(ca) if ca else None,
            "pip_index_url": env.get("AECC_PIP_INDEX_URL") or None,
            "pip_extra_index_urls": tuple(env.get("AECC_PIP_EXTRA_INDEX_URL", "").split()),
            "pip_trusted_hosts": tuple(env.get("AECC_PIP_TRUSTED_HOST", "").split()),
            "base_source": env.get("AECC_BASE_SOURCE", "auto"),
            "debian_mirror": env.get("AECC_DEBIAN_MIRROR", DEFAULT_MIRROR),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def pip_conf(self, *, credentials: bool = True) -> str:
        """pip's configuration for a build; untrusted builds get index URLs without credentials."""
        clean = (lambda u: u) if credentials else _strip_credentials
        lines = ["[global]", "no-cache-dir = true", "timeout = 180"]
        if self.ca_bundle is not None:
            lines.append(f"cert = {_SECRETS_DIR}/ca.pem")
        if self.pip_index_url:
            lines.append(f"index-url = {clean(self.pip_index_url)}")
        if self.pip_extra_index_urls:
            lines.append("extra-index-url = " + " ".join(clean(u) for u in self.pip_extra_index_urls))
        if self.pip_trusted_hosts:
            lines.append("trusted-host = " + " ".join(self.pip_trusted_hosts))
        return "\n".join(lines) + "\n"

    def describe(self) -> dict:
        """What doctor prints: the options builds will use (index URLs may carry credentials: masked)."""
        return {
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "pip_index_url": _mask(self.pip_index_url) if self.pip_index_url else "(PyPI default)",
            "pip_extra_index_urls": [_mask(u) for u in self.pip_extra_index_urls],
            "pip_trusted_hosts": list(self.pip_trusted_hosts),
            "base_source": self.base_source,
            "debian_mirror": self.debian_mirror,
        }


def _strip_credentials(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def _mask(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@dataclasses.dataclass(frozen=True)
class LayerBuild:
    layer: str
    image: str
    cached: bool
    seconds: float
    log_path: Path | None = None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "log_path": str(self.log_path) if self.log_path else None}



@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One builder at a time per host: two harnesses building one tag would both pay for it."""
    with open(paths.subdir("locks") / "images.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def harness_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() if out.returncode == 0 else "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return commit + ("-dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _image_or_none(client: Any, ref: str) -> Any:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


# --- the root file system -------------------------------------------------------------------


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
        image = _image_or_none(client, PULL_REFERENCE)
        if image is not None:
            return image
    if options.base_source in ("auto", "bootstrap"):
        image = _image_or_none(client, f"{ROOTFS_REPO}:{SUITE}")
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


# --- building layers ------------------------------------------------------------------------


def _freeze_from_container(container: Any, path: str) -> str:
    """Read the pip freeze the build left in the container, capped (it is trusted, but still bounded)."""
    import docker.errors

    try:
        stream, _stat = container.get_archive(path)
    except docker.errors.NotFound:
        return ""
    data = b"".join(stream)[: 1024**2]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        extracted = tar.extractfile(member) if member is not None else None
        return extracted.read(256 * 1024).decode("utf-8", "replace") if extracted else ""


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
    with tempfile.TemporaryDirectory(prefix="build-", dir=paths.scratch()) as tmp:
        build_dir = Path(tmp) / "build"
        secrets_dir = Path(tmp) / "secrets"
        build_dir.mkdir()
        # Trusted builds run as root and keep index credentials private; an untrusted build runs as
        # uid 10001 and must read its pip.conf (credentials already stripped) and the public CA bundle.
        secrets_dir.mkdir(mode=0o755 if layer.untrusted else 0o700)
        secrets_dir.chmod(0o755 if layer.untrusted else 0o700)
        (build_dir / "recipe.sh").write_text(layer.recipe)
        env_lines = [f"export {k}={_shell_quote(v)}" for k, v in sorted(layer.params.items())]
        env_lines += [
            "export DEBIAN_FRONTEND=noninteractive",
            f"export PIP_CONFIG_FILE={_SECRETS_DIR}/pip.conf",
        ]
        (build_dir / "env.sh").write_text("\n".join(env_lines) + "\n")
        (secrets_dir / "pip.conf").write_text(options.pip_conf(credentials=not layer.untrusted))
        for secret in secrets_dir.iterdir():
            secret.chmod(0o644 if layer.untrusted else 0o600)
        if options.ca_bundle is not None:
            shutil.copyfile(options.ca_bundle, secrets_dir / "ca.pem")
        mounts = [Mount(build_dir, _BUILD_DIR), Mount(secrets_dir, _SECRETS_DIR)]
        for key, src in sorted(layer.sources.items()):
            mounts.append(Mount(src.resolve(), f"{_SOURCES_DIR}/{key}"))
        freeze = layer.freeze_path
        script = (
            f". {_BUILD_DIR}/env.sh && /bin/sh -eux {_BUILD_DIR}/recipe.sh && "
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
            error = ImageBuildError(
                f"building layer {layer.name} failed (the layer is too large)",
                expected=f"at most {profile.disk_cap_bytes} bytes written (profile disk_cap)",
                found=f"{too_big[0]} bytes",
                fix="install less: large weights belong in the fetch stage's cache, not in the image",
                log_path=log_path,
            )
            error.layer = layer.name
            error.outcome = Outcome.OUTPUT_LIMIT
            raise error
    if result.outcome is not Outcome.OK:
        error = ImageBuildError(
            f"building layer {layer.name} failed ({result.outcome.value}: {result.detail})",
            expected="the recipe images/" + layer.name.split("-")[0] + "/build.sh to exit 0",
            found=result.log_tail(1500).strip()[-1500:] or result.detail,
            fix="read the log; for TLS errors pass --ca-bundle, for an unreachable index --pip-index-url",
            log_path=log_path,
        )
        error.layer = layer.name  # which layer broke decides whose failure it is (harness.build)
        error.outcome = result.outcome
        raise error
    return LayerBuild(layer.name, ref, cached=False, seconds=round(time.monotonic() - started, 1), log_path=log_path)


def _layer_size_watch(cap: int) -> Callable[[Any], tuple[Outcome, str] | None]:
    """A run_stage watch that kills an untrusted build whose writable layer passes `cap`.

    It measures the overlay upper directory on the host (a local engine), every few seconds since a
    walk of a large install is not free; the commit-time size check catches the last few seconds.
    """
    from harness.runner import directory_size

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
    from harness import engine as eng

    return (eng.LABEL_MANAGED, eng.LABEL_OWNER_PID, eng.LABEL_OWNER_HOST, eng.LABEL_OWNER_START,
            eng.LABEL_STAGE, eng.LABEL_RUN)


def _shell_quote(value: str) -> str:
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def build(
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
        ImageBuildError: a recipe failed (the log is named) or the root image cannot be had.
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
            existing = None if options.force else _image_or_none(client, ref)
            if existing is not None:
                results.append(LayerBuild(layer.name, ref, cached=True, seconds=round(time.monotonic() - started, 2)))
                parent_image = existing
                continue
            results.append(_build_one(client, layer, parent_image, ref, root.id, options,
                                      submission_profile if layer.untrusted else profile, log))
            parent_image = client.images.get(ref)
    return results


def current_ref(client: Any, layer: Layer) -> str | None:
    """The tag `layer` has now, or None when its root file system is not here yet."""
    root = _image_or_none(client, PULL_REFERENCE) or _image_or_none(client, f"{ROOTFS_REPO}:{SUITE}")
    return image_ref(layer, root.id) if root is not None else None


def require_image(client: Any, layer: Layer) -> str:
    """The reference of a built layer; raises ImageBuildError telling how to build it if absent."""
    ref = current_ref(client, layer)
    if ref is None or _image_or_none(client, ref) is None:
        raise ImageBuildError(
            f"image for layer {layer.name} is not built",
            expected=ref or f"{layer.repository}:<hash>",
            found="absent",
            fix=f"run `aecc images build --target {layer.name}` (or `make images`)",
        )
    return ref


# --- listing and pruning --------------------------------------------------------------------


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
    root = _image_or_none(client, PULL_REFERENCE) or _image_or_none(client, f"{ROOTFS_REPO}:{SUITE}")
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
