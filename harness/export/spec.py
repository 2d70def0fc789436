"""What a Kubernetes export is asked for (`ExportSpec`, `DataVolume`) and what its objects are called.

The manifests (harness/export/render.py) and the README that tells an operator how to run them
(harness/export/readme.py) name the same Jobs, claims, labels, mount points and quantities: they are
defined once here so the two can never disagree. The spec's names are checked when it is made, so
a bad --namespace or --registry stops the export before anything is rendered.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path

from checker.jobs import DEFAULT_MAX_SECONDS

from harness.errors import UsageError
from harness.export.resolve import ExportImage
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage

#: the Kubernetes version the manifests are written for and validated against (tests/harness/export)
K8S_VERSION = "1.30"
#: the stages that run submission code, in the order they must run
STAGES = (Stage.FETCH, Stage.CHECK, Stage.ENCODE)
#: the stages the harness pins a GPU for (`run_contract` gives fetch none: it only constructs)
GPU_STAGES = frozenset({Stage.CHECK, Stage.ENCODE})
GPU_RESOURCE = "nvidia.com/gpu"

PREFIX = "aecc.org/"
LABEL_SUBMISSION = PREFIX + "submission"  # sha256[:12]: label values are at most 63 characters
LABEL_STAGE = PREFIX + "stage"
LABEL_NETWORK = PREFIX + "network"  # what the NetworkPolicies select
ANNOTATION_SHA256 = PREFIX + "submission-sha256"
ANNOTATION_ENCODER = PREFIX + "encoder"
ANNOTATION_TORCH = PREFIX + "torch"
ANNOTATION_IMAGE = PREFIX + "image"
ANNOTATION_TAG_SOURCE = PREFIX + "image-tag-source"
ANNOTATION_PROFILE = PREFIX + "profile"
ANNOTATION_AGENT = PREFIX + "agent-sha256"
ANNOTATION_HARNESS = PREFIX + "harness-version"
MANAGED_BY = "aecc-export"

# Mount points inside the containers: the harness's own where it has one.
CACHE_TARGET = "/cache"
OUT_TARGET = "/out"
AUDIO_TARGET = "/data/audio"
JOBS_TARGET = "/jobs"
JOBS_FILE = "jobs.json"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_REGISTRY = re.compile(rf"^(?:{_DOMAIN}|{_PATH_COMPONENT})(?:/{_PATH_COMPONENT})*$")


class DataSource(str, enum.Enum):
    CLAIM = "claim"
    HOST_PATH = "host-path"


class NetworkMode(str, enum.Enum):
    """The `aecc.org/network` label of a pod, which picks its NetworkPolicy."""

    EGRESS = "egress"  # the internet, never private ranges (fetch)
    NONE = "none"  # deny all, both ways (check, encode)


@dataclasses.dataclass(frozen=True)
class DataVolume:
    """The prepared-audio volume the encode Job reads, read-only: a PVC, or a folder on every node.

    Layout (the README repeats it): `audio/<name>/` label-free audio folders as `checker.prepare`
    writes them (`order.json`, `<split>/<batch>.{json,bin}`; never `meta/`: it holds keys and
    labels), and `jobs/<sha256>/jobs.json` per submission. Only those two subpaths are mounted.
    """

    source: DataSource
    ref: str  # the claim's name, or the absolute path on the nodes

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", DataSource(self.source))
        if self.source is DataSource.CLAIM and not _DNS_SUBDOMAIN.fullmatch(self.ref):
            raise UsageError(f"--data-claim {self.ref!r} is not a PersistentVolumeClaim name",
                             expected="lowercase letters, digits, '-' and '.', at most 253 characters",
                             found=self.ref, fix="pass the claim's name as `kubectl get pvc` shows it")
        if self.source is DataSource.HOST_PATH and (
                not self.ref.startswith("/") or ".." in self.ref.split("/") or "\0" in self.ref):
            raise UsageError(f"--data-host-path {self.ref!r} is not an absolute path on the nodes",
                             expected="an absolute path without '..', e.g. /srv/aecc-data",
                             found=self.ref, fix="pass the folder as it is on every GPU node")


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What to render: the profile, where the data is, and the cluster-side names."""

    out: Path
    profile: SandboxProfile
    namespace: str = "aecc"
    data: DataVolume | None = None  # None: no encode Jobs (fetch and check need no data)
    registry: str | None = None  # prefix the submission images are pushed under
    storage_class: str | None = None  # None: the cluster's default StorageClass
    output_bytes: int = 50 * 1024**3  # the per-submission output claim (reports, embeddings)
    encode_tasks: int = 1  # tasks one encode Job encodes: its deadline is this many stage clocks
    max_seconds: float = DEFAULT_MAX_SECONDS  # the contract checker's own time budget, as `aecc validate` passes it
    ttl_after_finished_s: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if not _DNS_LABEL.fullmatch(self.namespace):
            raise UsageError(f"--namespace {self.namespace!r} is not a namespace name",
                             expected="a DNS label: lowercase letters, digits and '-', at most 63 characters",
                             found=self.namespace, fix="e.g. --namespace aecc")
        if self.registry is not None and not _REGISTRY.fullmatch(self.registry.rstrip("/")):
            raise UsageError(f"--registry {self.registry!r} is not an image name prefix",
                             expected="host[:port][/path], e.g. registry.example.org/aecc",
                             found=self.registry, fix="give the prefix the images are pushed under, without a tag")
        if self.storage_class is not None and not _DNS_SUBDOMAIN.fullmatch(self.storage_class):
            raise UsageError(f"--storage-class {self.storage_class!r} is not a StorageClass name",
                             expected="lowercase letters, digits, '-' and '.'", found=self.storage_class,
                             fix="pass a name `kubectl get storageclass` lists")
        if self.encode_tasks < 1:
            raise UsageError("--encode-tasks must be at least 1", expected=">= 1", found=str(self.encode_tasks))
        if self.max_seconds <= 0 or self.ttl_after_finished_s < 0 or self.output_bytes < 1024**2:
            raise UsageError("export limits out of range",
                             expected="--max-seconds > 0, --ttl-after-finished >= 0, --output-size >= 1MiB",
                             found=f"{self.max_seconds:g} s, {self.ttl_after_finished_s:g} s, {self.output_bytes} B")


def quantity_bytes(value: int) -> str:
    """Bytes as a Kubernetes quantity, exact: 12GiB -> '12Gi', 1000 -> '1000'."""
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def quantity_cpu(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"


def user_ids(profile: SandboxProfile) -> tuple[int, int]:
    """The profile's `uid[:gid]` as numbers (the gid defaults to the uid)."""
    uid, _, gid = profile.user.partition(":")
    return int(uid), int(gid or uid)


def job_name(stage: Stage, image: ExportImage) -> str:
    return f"aecc-{Stage(stage).value}-{image.short}"


def cache_claim(image: ExportImage) -> str:
    return f"aecc-cache-{image.short}"


def out_claim(image: ExportImage) -> str:
    return f"aecc-out-{image.short}"


def stages_for(spec: ExportSpec) -> tuple[Stage, ...]:
    return STAGES if spec.data is not None else tuple(s for s in STAGES if s is not Stage.ENCODE)

