"""What a layer is made from, and the tag that names it.

A layer's tag is `sha256(layer name, recipe text, parameters, the sources it copies, the parent's
tag)`, so building an unchanged layer is a look-up, and a changed input rebuilds that layer and
the ones above it, nothing below.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import subprocess
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from harness.errors import UsageError
from harness.paths import AGENT_DIR, IMAGES_DIR, REPO_ROOT  # noqa: E402,F401  (the layers' inputs; re-exported)
from harness.safeio import sha256_file

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
LABEL_LOCK = "org.aecc.lock-sha256"
LABEL_LOCK_KEY = "org.aecc.lock-key"
#: the lock itself travels with the image: a machine (or an AECC_HOME) that did not build it still has it
LABEL_LOCK_TEXT = "org.aecc.lock"

#: the runtime's torch; its companions come from the companion table, never from here
RUNTIME_TORCH = "2.11.0"
XARES_VERSION = "0.1.3"
#: pip for every venv the harness builds: 26 and later have `--uploaded-prior-to` (`--resolve-before`)
PIP_PIN = "pip==26.3 --hash=sha256:f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13"
#: where a recipe leaves pip's installation report, from which the host makes the layer's lock
PIP_REPORT = "/opt/aecc/pip-report.json"

BASE_ENV = MappingProxyType(
    {
        "PATH": "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": "/opt/venv",
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One image layer: a recipe run on top of its parent, plus the sources and files it is given.

    `files` are written into the build folder (`/run/aecc-build/<name>`) and are inputs of the tag:
    the companion constraints, a pinned pip. `pip_report` is where the recipe leaves pip's report
    (None for a layer that installs nothing with pip); the host makes the layer's lock from it.
    """

    name: str
    repository: str
    recipe: str
    parent: "Layer | None"
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tag_prefix: str = ""
    #: untrusted layers (a submission's requirements) build as the sandbox user, hardened, and
    #: never see index credentials
    untrusted: bool = False
    freeze_path: str = "/opt/aecc/pip-freeze.txt"
    freeze_command: str = "python -m pip freeze --all"
    workdir: str = "/"
    pip_report: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "sources", MappingProxyType({k: Path(v) for k, v in self.sources.items()}))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        if not self.name or not self.repository:
            raise UsageError("a layer needs a name and a repository", expected="non-empty", found=repr(self))
        for key, path in self.sources.items():
            if not path.is_dir():
                raise UsageError(f"layer {self.name}: source {key!r} is not a directory", found=str(path))
        for key in self.files:
            if not key.replace(".", "").replace("-", "").replace("_", "").isalnum() or key in ("recipe.sh", "env.sh",
                                                                                               "lock.txt", "lib.sh"):
                raise UsageError(f"layer {self.name}: build file name {key!r} is not allowed",
                                 expected="a plain file name other than recipe.sh, env.sh, lib.sh, lock.txt")

    def chain(self) -> list["Layer"]:
        """This layer and its ancestors, bottom first."""
        chain, layer = [], self
        while layer is not None:
            chain.append(layer)
            layer = layer.parent
        return list(reversed(chain))


def _recipe(name: str) -> str:
    return (IMAGES_DIR / name / "build.sh").read_text()


def pip_lib() -> str:
    """The shell functions recipes install with (`images/lib.sh`); an input of every layer's tag."""
    return (IMAGES_DIR / "lib.sh").read_text()


def base_layer() -> Layer:
    return Layer(name="base", repository="aecc/base", recipe=_recipe("base"), parent=None, env=BASE_ENV,
                 files={"pip.txt": PIP_PIN + "\n"})


class TorchFlavour(str, enum.Enum):
    """Which build of torch a torch layer holds."""

    CUDA = "cuda"  # PyPI's x86_64 wheel: what a T4 runs (about 5 GB with its NVIDIA libraries)
    CPU = "cpu"  # the `+cpu` build from PyTorch's CPU index: small enough for a hosted CI runner


#: where `+cpu` builds come from unless the operator names another index (AECC_TORCH_CPU_INDEX_URL)
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"


def torch_index_args(flavour: TorchFlavour, cpu_index_url: str = CPU_INDEX_URL) -> str:
    """pip options that make an index of `+cpu` builds visible beside PyPI (nothing for CUDA)."""
    return "" if TorchFlavour(flavour) is TorchFlavour.CUDA else f"--extra-index-url {cpu_index_url}"


def torch_layer(version: str = RUNTIME_TORCH, flavour: TorchFlavour | str = TorchFlavour.CUDA,
                cpu_index_url: str = CPU_INDEX_URL) -> Layer:
    from harness.layers.companions import for_torch

    flavour = TorchFlavour(flavour)
    cuda = flavour is TorchFlavour.CUDA
    params = {"AECC_TORCH_VERSION": version}
    if not cuda:
        # The local version label picks the CPU build; the CUDA layer's inputs stay as they were.
        params.update(AECC_TORCH_SPEC=f"torch=={version}+cpu", AECC_PIP_INDEX_ARGS=torch_index_args(flavour,
                                                                                                   cpu_index_url))
    return Layer(
        name=f"torch-{version}" if cuda else f"torch-{version}-cpu",
        repository="aecc/torch",
        recipe=_recipe("torch"),
        parent=base_layer(),
        params=params,
        files={"constraints.txt": for_torch(version).constraints()},
        tag_prefix=f"{version}-" if cuda else f"{version}-cpu-",
        pip_report=PIP_REPORT,
    )


def runtime_versions(torch: str = RUNTIME_TORCH) -> dict[str, str]:
    """What the runtime image carries: its torch, the companions made for it, and X-ARES."""
    from harness.layers.companions import for_torch

    companions = for_torch(torch)
    return {"torch": torch, "torchaudio": companions.torchaudio, "torchcodec": companions.torchcodec,
            "xares": XARES_VERSION}


def runtime_deps_layer(torch: str = RUNTIME_TORCH) -> Layer:
    from harness.layers.companions import for_torch

    versions = runtime_versions(torch)
    if versions["torchaudio"] is None or versions["torchcodec"] is None:
        raise UsageError(f"the runtime cannot be built on torch {torch}",
                         expected="a torch with torchaudio and torchcodec builds in harness/layers/companions.json",
                         found=f"torchaudio {versions['torchaudio']}, torchcodec {versions['torchcodec']}")
    return Layer(
        name="runtime-deps",
        repository="aecc/runtime-deps",
        recipe=_recipe("runtime-deps"),
        parent=torch_layer(torch),
        params={f"AECC_{k.upper()}_VERSION": v for k, v in sorted(versions.items())},
        files={"constraints.txt": for_torch(torch).constraints()},
        pip_report=PIP_REPORT,
    )


def runtime_layer(torch: str = RUNTIME_TORCH) -> Layer:
    return Layer(
        name="runtime",
        repository="aecc/runtime",
        recipe=_recipe("runtime"),
        parent=runtime_deps_layer(torch),
        sources={"checker": AGENT_DIR},
    )


def named_layer(name: str, cpu_index_url: str = CPU_INDEX_URL) -> Layer:
    """The standard layer called `name` (`base`, `torch`, `torch-<version>`, `runtime-deps`, `runtime`)."""
    if name == "base":
        return base_layer()
    if name == "torch":
        return torch_layer()
    if name.startswith("torch-") and name.endswith("-cpu"):
        return torch_layer(name[len("torch-"): -len("-cpu")], TorchFlavour.CPU, cpu_index_url)
    if name.startswith("torch-"):
        return torch_layer(name[len("torch-") :])
    if name == "runtime-deps":
        return runtime_deps_layer()
    if name == "runtime":
        return runtime_layer()
    raise UsageError(
        f"unknown image layer {name!r}",
        expected="base, torch, torch-<version>, torch-<version>-cpu, runtime-deps or runtime",
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
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def layer_inputs(layer: Layer, root_id: str | None) -> dict:
    """Everything a layer is made from; its sha256 is the layer's tag.

    With `root_id=None` the root file system is left out and each parent is named by its lock key:
    what a committed lock is keyed by, the same on every machine (`harness.layers.lock`).
    """
    if layer.parent is None:
        parent = f"root@{root_id}" if root_id is not None else "root"
    else:
        parent = image_ref(layer.parent, root_id) if root_id is not None else lock_key(layer.parent)
    return {
        "layer": layer.name,
        "recipe_sha256": hashlib.sha256(layer.recipe.encode()).hexdigest(),
        "lib_sha256": hashlib.sha256(pip_lib().encode()).hexdigest(),
        "params": dict(sorted(layer.params.items())),
        "env": dict(sorted(layer.env.items())),
        "files": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in sorted(layer.files.items())},
        "sources": {k: tree_hash(v) for k, v in sorted(layer.sources.items())},
        "parent": parent,
        "untrusted": layer.untrusted,
        "freeze_path": layer.freeze_path,
        "freeze_command": layer.freeze_command,
        "workdir": layer.workdir,
        "pip_report": layer.pip_report,
    }


def lock_key(layer: Layer) -> str:
    """The layer's identity without the root file system's id: what committed locks are keyed by."""
    return hashlib.sha256(json.dumps(layer_inputs(layer, None), sort_keys=True).encode()).hexdigest()


def inputs_hash(layer: Layer, root_id: str) -> str:
    blob = json.dumps(layer_inputs(layer, root_id), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def image_ref(layer: Layer, root_id: str) -> str:
    return f"{layer.repository}:{layer.tag_prefix}{inputs_hash(layer, root_id)[:16]}"


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
