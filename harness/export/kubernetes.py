"""`aecc export kubernetes`: the sandbox profile rendered as Kubernetes Jobs, one per submission stage
that runs submission code (fetch, check, encode).

Why a renderer and not a scheduler: on one machine the harness enforces its envelope itself (engine
flags, an NVML sampler, a wall-clock watcher, the `aecc-egress` bridge). In a cluster the same
envelope has to be stated to the kubelet, the CNI and the GPU device plugin, and each enforces only
what it supports. So this module only renders, from the same profile file the Docker sandbox reads
(no limit is written twice), and the README it writes says what the cluster must provide.

How the profile maps (`harness.sandbox.run.container_config` is the Docker side):

    memory, swap 0        requests == limits (Guaranteed QoS: no swap even where nodes have some)
    cpus                  cpu requests == limits
    gpu                   one `nvidia.com/gpu` for the stages the harness gives a GPU (check, encode)
    user                  runAsUser/runAsGroup/fsGroup, runAsNonRoot
    read_only_root        readOnlyRootFilesystem
    cap_drop              capabilities.drop
    no_new_privileges     allowPrivilegeEscalation: false
    seccomp               seccompProfile Localhost, the file written (content-hashed) for the nodes
    tmp_size, shm_size    memory-backed emptyDirs on /tmp and /dev/shm, with size limits
    runtime               runtimeClassName
    stages.*.wall_clock   activeDeadlineSeconds
    stages.*.network      a NetworkPolicy: deny all, or the internet minus private ranges
                          (`harness.sandbox.egress.BLOCKED_RANGES`) plus cluster DNS
    disk_cap              the size of the submission's download-cache claim

Not mapped, and said so in the README: pids_limit (the kubelet's podPidsLimit), ulimits, init,
log_cap (the kubelet's containerLogMaxSize), the GPU memory cap (the harness measures it with NVML
on the host), encode's per-task clock and its output cap.

The agent (`checker/`) is shipped as an immutable ConfigMap named by its tree hash and mounted
read-only at the path the harness mounts it (`harness.sandbox.agent.AGENT_TARGET`): it is never in
the submission's image, exactly as on a host. The commands are built by the same functions the
stages use (`agent_command`), and the tests compare every Job with what `container_config` gives.

Stages run in order on a host; a Job has no dependencies, so check and encode are rendered
suspended and the README says when to resume them.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from harness import __version__, paths
from harness.errors import IntakeError, UsageError
from harness.layers.model import AGENT_DIR, tree_hash
from harness.sandbox.agent import (
    AGENT_TARGET,
    CACHE_ENV,
    OFFLINE_ENV,
    SUBMISSION_SRC,
    agent_command,
)
from harness.sandbox.egress import BLOCKED_RANGES
from harness.sandbox.profiles import SandboxProfile, Stage
from harness.stages.intake import Submission, intake

__all__ = ["K8S_VERSION", "DataSource", "DataVolume", "ExportSpec", "Exported", "NetworkMode", "Rendered",
           "SubmissionImage", "TagSource", "collect_submissions", "expand_sources", "export_kubernetes",
           "pull_ref", "render", "resolve_images", "to_yaml"]

#: the Kubernetes version the manifests are written for and validated against (tests/harness/export)
K8S_VERSION = "1.30"
#: the stages that run submission code, in the order they must run
STAGES = (Stage.FETCH, Stage.CHECK, Stage.ENCODE)
#: the stages the harness pins a GPU for (`run_contract` gives fetch none: it only constructs)
GPU_STAGES = frozenset({Stage.CHECK, Stage.ENCODE})
GPU_RESOURCE = "nvidia.com/gpu"
#: the tag written where the submission image's tag cannot be computed (no root image id)
UNRESOLVED = "unresolved"
#: a ConfigMap (the whole object) must stay under etcd's 1 MiB; leave room for its metadata
CONFIGMAP_DATA_CAP = 900 * 1024

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
_ROOT_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_CONFIGMAP_KEY = re.compile(r"[^-._a-zA-Z0-9]")


class TagSource(str, enum.Enum):
    """Where a submission image's tag came from: it hashes the root image's id, which only an engine
    that built (or will build) the image knows."""

    ROOT_ID = "root-id"  # computed offline from --root-id
    ENGINE = "engine"  # the root image id read from the local engine
    UNRESOLVED = "unresolved"  # neither: a placeholder tag that no registry will have


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
    max_seconds: float = 600.0  # the contract checker's own time budget, as `aecc validate` passes it
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


@dataclasses.dataclass(frozen=True)
class SubmissionImage:
    """A submission and the image the harness builds for it (`harness.stages.build`)."""

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


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Every file of an export, by path relative to the export folder, and what needs saying."""

    files: Mapping[str, str]
    manifests: Mapping[str, Mapping[str, Any]]  # the Kubernetes objects, by the file that holds each
    images: tuple[SubmissionImage, ...]
    warnings: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Exported:
    out: Path
    files: tuple[str, ...]
    images: tuple[SubmissionImage, ...]
    pushed_refs: tuple[str, ...]
    warnings: tuple[str, ...]


# ---------------------------------------------------------------- submissions and their images


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
                   resolve_before: str | None = None) -> tuple[SubmissionImage, ...]:
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
        images.append(SubmissionImage(submission, torch, ref, source, built))
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


# ---------------------------------------------------------------- quantities and names


def quantity_bytes(value: int) -> str:
    """Bytes as a Kubernetes quantity, exact: 12GiB -> '12Gi', 1000 -> '1000'."""
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def quantity_cpu(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"


def _user(profile: SandboxProfile) -> tuple[int, int]:
    uid, _, gid = profile.user.partition(":")
    return int(uid), int(gid or uid)


def job_name(stage: Stage, image: SubmissionImage) -> str:
    return f"aecc-{Stage(stage).value}-{image.short}"


def cache_claim(image: SubmissionImage) -> str:
    return f"aecc-cache-{image.short}"


def out_claim(image: SubmissionImage) -> str:
    return f"aecc-out-{image.short}"


def _labels(**extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "aecc", "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/version": __version__, **extra}


def network_mode(profile: SandboxProfile, stage: Stage) -> NetworkMode:
    return NetworkMode.EGRESS if profile.stage(stage).network else NetworkMode.NONE


# ---------------------------------------------------------------- the pieces


@dataclasses.dataclass(frozen=True)
class _Agent:
    name: str
    digest: str
    data: Mapping[str, str]
    binary: Mapping[str, str]
    items: tuple[tuple[str, str], ...]  # (ConfigMap key, path under the mount)


def _agent(agent_dir: Path) -> _Agent:
    """The agent's files as a ConfigMap: keys are sanitised, `items` restore the tree."""
    import base64

    digest = tree_hash(agent_dir)
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    items: list[tuple[str, str]] = []
    total = 0
    for path in sorted(agent_dir.rglob("*")):
        rel = path.relative_to(agent_dir)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or path.is_dir():
            continue
        if path.is_symlink() or not path.is_file():
            raise UsageError(f"the agent folder holds {rel}, which is not a regular file",
                             expected="regular files only", found=str(path), fix="remove it from checker/")
        key = _CONFIGMAP_KEY.sub("_", rel.as_posix())
        if key in data or key in binary:
            raise UsageError(f"two agent files map to the ConfigMap key {key!r}", found=rel.as_posix(),
                             fix="rename one of them")
        content = path.read_bytes()
        total += len(content)
        try:
            data[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode()
        items.append((key, rel.as_posix()))
    if total > CONFIGMAP_DATA_CAP:
        raise UsageError("the agent is too large for a ConfigMap",
                         expected=f"at most {CONFIGMAP_DATA_CAP} bytes (a ConfigMap must stay under 1 MiB)",
                         found=f"{total} bytes in {agent_dir}",
                         fix="ship the agent in an image instead (not rendered by this export yet)")
    return _Agent(f"aecc-agent-{digest[:12]}", digest, data, binary, tuple(items))


def _seccomp(profile: SandboxProfile) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The pods' seccompProfile and, for a Localhost one, (path under the kubelet's seccomp dir, text)."""
    path = profile.seccomp_path()
    if path is None:  # the profile asks for the engine's default
        return {"type": "RuntimeDefault"}, None
    text = path.read_text()
    json.loads(text)  # a profile the engine could not load must not reach the nodes either
    local = f"aecc/{path.stem}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    return {"type": "Localhost", "localhostProfile": local}, (local, text)


def _meta(name: str, spec: ExportSpec, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
          ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": spec.namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _namespace(spec: ExportSpec) -> dict[str, Any]:
    # Pod Security "restricted" admits everything rendered here but a hostPath volume, which no
    # level short of "privileged" admits: with --data-host-path it only warns and audits.
    labels = _labels()
    if spec.data is None or spec.data.source is DataSource.CLAIM:
        labels["pod-security.kubernetes.io/enforce"] = "restricted"
        labels["pod-security.kubernetes.io/enforce-version"] = f"v{K8S_VERSION}"
    labels["pod-security.kubernetes.io/warn"] = "restricted"
    labels["pod-security.kubernetes.io/audit"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace, "labels": labels}}


def _network_policies(spec: ExportSpec) -> dict[str, dict[str, Any]]:
    """Deny-all for pods labelled `none`; for `egress`, the internet but not the ranges
    `harness.sandbox.egress` drops, and DNS to the cluster's resolver only."""
    select = lambda mode: {"matchLabels": {"app.kubernetes.io/name": "aecc", LABEL_NETWORK: mode.value}}  # noqa: E731
    offline = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("aecc-offline-deny-all", spec, _labels()),
        "spec": {"podSelector": select(NetworkMode.NONE), "policyTypes": ["Ingress", "Egress"]},
    }
    egress = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("aecc-fetch-egress", spec, _labels()),
        "spec": {
            "podSelector": select(NetworkMode.EGRESS),
            "policyTypes": ["Ingress", "Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(BLOCKED_RANGES)}}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            ],
        },
    }
    return {"networkpolicy-offline-deny-all.yaml": offline, "networkpolicy-fetch-egress.yaml": egress}


def _agent_configmap(spec: ExportSpec, agent: _Agent) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _meta(agent.name, spec, _labels(**{"app.kubernetes.io/component": "agent"}),
                          {ANNOTATION_AGENT: agent.digest, ANNOTATION_HARNESS: __version__}),
        "immutable": True,
        "data": dict(agent.data),
    }
    if agent.binary:
        doc["binaryData"] = dict(agent.binary)
    return doc


def _claim(spec: ExportSpec, name: str, size: int, image: SubmissionImage, role: str) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {
        "storage": quantity_bytes(size)}}}
    if spec.storage_class:
        claim_spec["storageClassName"] = spec.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(name, spec, _labels(**{"app.kubernetes.io/component": role,
                                                     LABEL_SUBMISSION: image.short}),
                              {ANNOTATION_SHA256: image.submission.sha256}),
            "spec": claim_spec}


def stage_env(profile: SandboxProfile, stage: Stage, *, gpu: bool) -> dict[str, str]:
    """The container's environment, composed as `run_contract`/`encode` and `container_config` do."""
    env = dict(profile.env)
    if stage is Stage.ENCODE:
        env.update({"HF_HOME": CACHE_ENV["HF_HOME"], "TORCH_HOME": CACHE_ENV["TORCH_HOME"], **OFFLINE_ENV})
    else:
        env.update(CACHE_ENV)
        if stage is Stage.CHECK:
            env.update(OFFLINE_ENV)
    if gpu and profile.gpu is not None:
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        env["AECC_GPU_MEMORY_LIMIT_BYTES"] = str(profile.gpu.memory_bytes)
    return env


def stage_command(stage: Stage, image: SubmissionImage, max_seconds: float) -> tuple[str, ...]:
    """The command the harness runs for the stage (`run_contract`, `encode._encode_batch`)."""
    encoder = image.submission.encoder.spec
    if stage is Stage.ENCODE:
        return agent_command("encode", "--submission", SUBMISSION_SRC, "--encoder", encoder,
                             "--jobs", f"{JOBS_TARGET}/{JOBS_FILE}")
    phase = Stage(stage).value
    return agent_command("contract", "--submission", SUBMISSION_SRC, "--encoder", encoder,
                         "--report", f"{OUT_TARGET}/{phase}.json", "--phase", phase,
                         "--max-seconds", f"{max_seconds:g}")


def deadline_s(profile: SandboxProfile, stage: Stage, encode_tasks: int) -> int:
    """activeDeadlineSeconds: the stage's wall clock; encode gets one per task plus 60 s, as on a host."""
    clock = profile.stage(stage).wall_clock_s
    if stage is Stage.ENCODE:
        clock = clock * encode_tasks + 60
    return int(math.ceil(clock))


def _job(spec: ExportSpec, image: SubmissionImage, stage: Stage, agent: _Agent,
         seccomp: Mapping[str, Any]) -> dict[str, Any]:
    profile = spec.profile
    policy = profile.stage(stage)
    if not policy.writable_mounts:
        raise UsageError(f"stage {stage.value} may not have writable mounts",
                         expected=f"a profile whose stages.{stage.value}.writable_mounts is true (the report "
                                  f"or the embeddings are written to {OUT_TARGET})",
                         found=f"profile {profile.name}: false", fix="use a profile that allows them")
    uid, gid = _user(profile)
    gpu = profile.gpu is not None and stage in GPU_STAGES
    mode = network_mode(profile, stage)
    labels = _labels(**{"app.kubernetes.io/component": stage.value, LABEL_SUBMISSION: image.short,
                        LABEL_STAGE: stage.value, LABEL_NETWORK: mode.value})
    ref = pull_ref(image.local_ref, spec.registry)
    annotations = {ANNOTATION_SHA256: image.submission.sha256, ANNOTATION_ENCODER: image.submission.encoder.spec,
                   ANNOTATION_TORCH: image.torch_version, ANNOTATION_IMAGE: ref,
                   ANNOTATION_TAG_SOURCE: image.tag_source.value, ANNOTATION_PROFILE: profile.name,
                   ANNOTATION_AGENT: agent.digest, ANNOTATION_HARNESS: __version__}

    fetching = stage is Stage.FETCH
    mounts: list[dict[str, Any]] = [
        {"name": "agent", "mountPath": AGENT_TARGET, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "shm", "mountPath": "/dev/shm"},
        {"name": "out", "mountPath": OUT_TARGET},
        {"name": "cache", "mountPath": CACHE_TARGET, "readOnly": not fetching},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "agent", "configMap": {"name": agent.name, "defaultMode": 0o444,
                                        "items": [{"key": k, "path": p} for k, p in agent.items]}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": quantity_bytes(profile.tmp_bytes)}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity_bytes(profile.shm_bytes)}},
        {"name": "out", "persistentVolumeClaim": {"claimName": out_claim(image)}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": cache_claim(image), "readOnly": not fetching}},
    ]
    if stage is Stage.ENCODE:
        assert spec.data is not None
        mounts += [{"name": "data", "mountPath": AUDIO_TARGET, "subPath": "audio", "readOnly": True},
                   {"name": "data", "mountPath": JOBS_TARGET, "subPath": f"jobs/{image.submission.sha256}",
                    "readOnly": True}]
        if spec.data.source is DataSource.CLAIM:
            volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": spec.data.ref, "readOnly": True}})
        else:
            volumes.append({"name": "data", "hostPath": {"path": spec.data.ref, "type": "Directory"}})

    resources: dict[str, Any] = {
        "requests": {"cpu": quantity_cpu(profile.cpus), "memory": quantity_bytes(profile.memory_bytes)},
        "limits": {"cpu": quantity_cpu(profile.cpus), "memory": quantity_bytes(profile.memory_bytes)},
    }
    if gpu:
        resources["limits"][GPU_RESOURCE] = 1
    container = {
        "name": stage.value,
        "image": ref,
        "imagePullPolicy": "IfNotPresent",  # tags are content-addressed: a tag never moves
        "command": list(stage_command(stage, image, spec.max_seconds)),
        "workingDir": SUBMISSION_SRC,
        "env": [{"name": k, "value": v} for k, v in sorted(stage_env(profile, stage, gpu=gpu).items())],
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "privileged": False,
            "allowPrivilegeEscalation": not profile.no_new_privileges,
            "readOnlyRootFilesystem": profile.read_only_root,
            "capabilities": {"drop": list(profile.cap_drop)},
        },
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            # The claims' roots become group-writable for the sandbox user (hostPath is left alone).
            "fsGroup": gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": dict(seccomp),
        },
        "containers": [container],
        "volumes": volumes,
    }
    if profile.runtime:
        pod["runtimeClassName"] = profile.runtime
    if gpu:
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": _meta(job_name(stage, image), spec, labels, annotations),
        "spec": {
            # Only fetch starts on apply: a Job has no dependencies, check and encode wait to be resumed.
            "suspend": stage is not Stage.FETCH,
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_s(profile, stage, spec.encode_tasks),
            "ttlSecondsAfterFinished": int(spec.ttl_after_finished_s),
            # A pod evicted, preempted or lost with its node is the cluster's failure, never the
            # submission's: it is retried without counting against backoffLimit.
            "podFailurePolicy": {"rules": [{"action": "Ignore",
                                            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
            "template": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod},
        },
    }


def stages_for(spec: ExportSpec) -> tuple[Stage, ...]:
    return STAGES if spec.data is not None else tuple(s for s in STAGES if s is not Stage.ENCODE)


# ---------------------------------------------------------------- render and write


def render(spec: ExportSpec, images: Sequence[SubmissionImage], *, agent_dir: Path = AGENT_DIR) -> Rendered:
    """Every file of the export, in memory; reads only the profile's seccomp file and the agent.

    Raises:
        UsageError: no submissions, two submissions sharing a 12-digit prefix, a profile that
            forbids the writable mounts a stage needs, or an agent too large for a ConfigMap.
    """
    if not images:
        raise UsageError("no submissions to export", expected="at least one", found="none")
    shorts: dict[str, str] = {}
    for image in images:
        other = shorts.setdefault(image.short, image.submission.sha256)
        if other != image.submission.sha256:
            raise UsageError("two submissions share the first 12 digits of their sha256",
                             expected="distinct prefixes (object names use them)",
                             found=f"{other} and {image.submission.sha256}", fix="export them separately")
    agent = _agent(agent_dir)
    seccomp, seccomp_file = _seccomp(spec.profile)
    manifests: dict[str, dict[str, Any]] = {"namespace.yaml": _namespace(spec)}
    manifests.update(_network_policies(spec))
    manifests["configmap-agent.yaml"] = _agent_configmap(spec, agent)
    for image in images:
        folder = f"submissions/{image.short}"
        manifests[f"{folder}/pvc-cache.yaml"] = _claim(spec, cache_claim(image), spec.profile.disk_cap_bytes, image,
                                                       "cache")
        manifests[f"{folder}/pvc-out.yaml"] = _claim(spec, out_claim(image), spec.output_bytes, image, "output")
        for stage in stages_for(spec):
            manifests[f"{folder}/job-{stage.value}.yaml"] = _job(spec, image, stage, agent, seccomp)

    warnings = _warnings(spec, images)
    files = {path: to_yaml(doc) for path, doc in manifests.items()}
    files["kustomization.yaml"] = to_yaml({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": spec.namespace, "resources": list(manifests)})
    if seccomp_file is not None:
        files[f"seccomp/{seccomp_file[0]}"] = seccomp_file[1]
    files["README.txt"] = readme(spec, images, seccomp_file[0] if seccomp_file else None, agent.name, warnings)
    return Rendered(MappingProxyType(files), MappingProxyType(manifests), tuple(images), tuple(warnings))


def _warnings(spec: ExportSpec, images: Sequence[SubmissionImage]) -> list[str]:
    out = []
    unresolved = [i.short for i in images if i.tag_source is TagSource.UNRESOLVED]
    if unresolved:
        out.append(f"{len(unresolved)} image tag(s) end in '-{UNRESOLVED}': no root image id was given, so the "
                   "tags the harness builds could not be computed; export again with --root-id or "
                   "--image-tag-from-engine before applying")
    missing = [i.local_ref for i in images if i.built_here is False]
    if missing:
        out.append(f"{len(missing)} image(s) not built on this engine yet ({', '.join(missing[:3])}"
                   f"{', ...' if len(missing) > 3 else ''}): build them (`aecc validate`) before pushing")
    if spec.data is None:
        out.append("no encode Jobs: no data volume was given (--data-claim or --data-host-path)")
    elif spec.data.source is DataSource.HOST_PATH:
        out.append("the data volume is a hostPath: Pod Security 'restricted' cannot be enforced on the namespace "
                   "(it only warns); a hostPath PersistentVolume bound to a claim (--data-claim) keeps it")
    return out


def export_kubernetes(spec: ExportSpec, images: Sequence[SubmissionImage], *, agent_dir: Path = AGENT_DIR
                      ) -> Exported:
    """Render and write the export to `spec.out`, all at once: a folder is never left half-written.

    Raises:
        UsageError: `spec.out` exists and is not an empty folder, or what `render` raises.
    """
    out = Path(spec.out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not empty", expected="a new or empty folder",
                         found="a file" if not out.is_dir() else "a folder with files",
                         fix="choose another --out, or remove the old export first")
    rendered = render(spec, images, agent_dir=agent_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, text in rendered.files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        os.replace(tmp, out)  # onto a missing or empty folder: one step
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Exported(out, tuple(rendered.files), rendered.images,
                    tuple(dict.fromkeys(pull_ref(i.local_ref, spec.registry) for i in rendered.images)),
                    rendered.warnings)


# ---------------------------------------------------------------- YAML, without a YAML library

_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def _printable(ch: str) -> bool:
    o = ord(ch)
    return (0x20 <= o < 0x7F or 0xA0 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF) \
        and o not in (0x2028, 0x2029, 0xFEFF)


def _quote(text: str) -> str:
    """A YAML double-quoted scalar: everything outside printable ASCII escaped, so any text round-trips."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _literal_ok(text: str) -> bool:
    """Multi-line text that a `|` block keeps exactly (one final newline, no leading blank)."""
    return ("\n" in text[:-1] and text.endswith("\n") and not text.endswith("\n\n") and text[0] not in " \t\n"
            and all(ch in "\n\t" or _printable(ch) for ch in text))


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"mapping keys must be strings, not {key!r}")
    return key if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS else _quote(key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, (list, tuple)) and not value:
        return "[]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML here")


def _block(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            head = f"{pad}{_key(key)}:"
            if isinstance(item, (Mapping, list, tuple)) and item:
                lines.append(head)
                _block(item, indent + 2, lines)
            elif isinstance(item, str) and _literal_ok(item):
                lines.append(head + " |")
                lines.extend(f"{pad}  {line}" if line else "" for line in item[:-1].split("\n"))
            else:
                lines.append(f"{head} {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                sub: list[str] = []
                _block(item, indent + 2, sub)
                sub[0] = f"{pad}- {sub[0][indent + 2:]}"
                lines.extend(sub)
            elif isinstance(item, str) and _literal_ok(item):
                lines.append(f"{pad}- |")
                lines.extend(f"{pad}  {line}" if line else "" for line in item[:-1].split("\n"))
            else:
                lines.append(f"{pad}- {_scalar(item)}")


def to_yaml(doc: Mapping[str, Any]) -> str:
    """One YAML document in block style. Strings are always quoted (or `|` blocks), so no value is
    ever read back as another type ('on', '0755', 'null' stay strings)."""
    if not isinstance(doc, Mapping) or not doc:
        raise TypeError("a YAML document here is a non-empty mapping")
    lines: list[str] = []
    _block(doc, 0, lines)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the README written with the export


def readme(spec: ExportSpec, images: Sequence[SubmissionImage], seccomp_local: str | None, agent_name: str,
           warnings: Sequence[str]) -> str:
    profile = spec.profile
    ns = spec.namespace
    stages = stages_for(spec)
    gpu = profile.gpu is not None
    gid = _user(profile)[1]
    resume = "--type=merge -p '{\"spec\":{\"suspend\":false}}'"
    lines = [
        f"AECC harness {__version__}: Kubernetes export of {len(images)} submission(s), sandbox profile "
        f"'{profile.name}'.",
        f"Written for Kubernetes {K8S_VERSION} and validated offline against its published schemas "
        "(kubernetes-validate); a real cluster must still provide what THE CLUSTER MUST PROVIDE lists.",
        "",
    ]
    if warnings:
        lines += ["WARNINGS", *(f"  - {w}" for w in warnings), ""]
    lines += [
        "WHAT IS HERE",
        "  kustomization.yaml          lists every manifest below (kubectl apply -k)",
        f"  namespace.yaml              namespace '{ns}' with Pod Security labels",
        "  networkpolicy-*.yaml        deny-all for offline stages; internet minus private ranges for fetch",
        f"  configmap-agent.yaml        ConfigMap {agent_name}: the in-container agent (checker/), mounted",
        f"                              read-only at {AGENT_TARGET}; it is never in a submission's image",
        "  submissions/<sha12>/        per submission: two claims (download cache, output) and one Job per stage:",
        "                              " + ", ".join(s.value for s in stages),
    ]
    if seccomp_local:
        lines.append(f"  seccomp/{seccomp_local}")
        lines.append("                              the sandbox's seccomp profile, to be placed on the nodes (below)")
    lines += [
        "",
        "THE CLUSTER MUST PROVIDE (nothing here can check these; confirm each on the real cluster)",
    ]
    if gpu:
        lines += [
            f"  - GPUs through the NVIDIA device plugin (resource {GPU_RESOURCE}); check and encode ask for one.",
            f"    Profile '{profile.name}': {profile.description}",
            "    Schedule onto such GPUs with a nodeSelector patch (e.g. nvidia.com/gpu.product: Tesla-T4, a label",
            "    GPU feature discovery sets); the export pins no node.",
            f"    The profile's GPU memory cap ({profile.gpu.memory_bytes / 2**30:g} GiB) is NOT enforced here: on a",
            "    host the harness measures it with NVML; in the pod it is only advertised",
            "    (AECC_GPU_MEMORY_LIMIT_BYTES).",
        ]
    lines += [
        "  - A CNI that enforces NetworkPolicy (Calico, Cilium, ...). Without one the policies are accepted and",
        "    ignored: check and encode would have network. Policies add up: no other policy in the namespace",
        "    may allow traffic to these pods. Fetch may resolve names only through pods labelled",
        "    k8s-app=kube-dns in kube-system (NodeLocal DNSCache at 169.254.x.x is blocked); IPv6 egress is denied.",
        "    Nodes or an API server with public addresses remain reachable from fetch (no token is mounted).",
    ]
    if seccomp_local:
        lines += [
            f"  - The seccomp profile on every node that may run these pods, at <kubelet root>/seccomp/{seccomp_local}",
            f"    (default /var/lib/kubelet/seccomp/{seccomp_local}):",
            f"        sudo mkdir -p /var/lib/kubelet/seccomp/aecc && sudo cp seccomp/{seccomp_local} "
            f"/var/lib/kubelet/seccomp/{seccomp_local}",
            "    Without it the pods do not start (CreateContainerError); the name carries the file's hash, so a",
            "    node with an older version fails the same way instead of running under it.",
        ]
    lines += [
        "  - The images below, pushed where the nodes can pull them (add imagePullSecrets with a patch if the",
        "    registry is private). Pull time counts against each Job's deadline: pre-pull large images.",
        "  - A StorageClass for the claims" + (f" ('{spec.storage_class}')" if spec.storage_class else
                                               " (the cluster's default)") + ", ReadWriteOnce. The download",
        f"    cache's size is the profile's disk cap ({quantity_bytes(profile.disk_cap_bytes)}); only provisioners",
        "    that enforce capacity make it a cap.",
        f"  - fsGroup {gid} makes the claims writable for the sandbox user; a provisioner that ignores fsGroup",
        f"    (some NFS ones) needs the volume's root owned by {profile.user}.",
    ]
    if profile.runtime:
        lines.append(f"  - A RuntimeClass named '{profile.runtime}' (the profile's runtime).")
    if spec.data is not None:
        where = (f"claim '{spec.data.ref}'" if spec.data.source is DataSource.CLAIM
                 else f"host folder {spec.data.ref} on every GPU node")
        lines += [
            f"  - The data volume ({where}), readable by uid {_user(profile)[0]}, laid out as:",
            "        audio/<name>/                label-free audio folders as `checker.prepare` writes them",
            "                                     (order.json and <split>/<batch>.{json,bin}); NEVER meta/ or labels",
            "        jobs/<sha256>/jobs.json      per submission: the folders its encode Job encodes, e.g.",
            f'                                     [{{"audio": "{AUDIO_TARGET}/esc50-16k",',
            f'                                       "out": "{OUT_TARGET}/embeddings/esc50"}}]',
            "    Only these two subpaths are mounted (read-only). Audio is prepared at the encoder's sampling rate,",
            "    which fetch reports: prepare it (trusted, in the runtime image) after fetch, before resuming encode.",
        ]
    lines += [
        "",
        "IMAGES (the submission images as the harness builds them; push each one):",
    ]
    for image in images:
        ref = pull_ref(image.local_ref, spec.registry)
        if spec.registry:
            lines.append(f"  docker tag {image.local_ref} {ref} && docker push {ref}")
        else:
            lines.append(f"  {ref}   (no --registry: the nodes must already have it)")
    lines += [
        "",
        "RUN",
        "  kubectl apply -k .                 creates everything; only the fetch Jobs start",
        f"  kubectl -n {ns} wait --for=condition=complete --timeout=-1s job -l {LABEL_STAGE}=fetch",
        "  then, per submission, resume its later stages in order, each after the one before completed:",
        f"  kubectl -n {ns} patch job aecc-check-<sha12> {resume}",
    ]
    if spec.data is not None:
        lines.append(f"  kubectl -n {ns} patch job aecc-encode-<sha12> {resume}")
    lines += [
        "  A Job that fails is not retried (backoffLimit 0), except when the cluster disrupted its pod (eviction,",
        "  preemption, node loss): that is the cluster's failure, never the submission's. Read why a pod ended",
        "  from its status (OOMKilled, DeadlineExceeded, exit code), never from its log.",
        f"  Finished Jobs and their logs are deleted after {spec.ttl_after_finished_s / 3600:g} h; the claims stay",
        "  until deleted.",
        "",
        "RESULTS",
        f"  The output claim aecc-out-<sha12> holds {OUT_TARGET}/fetch.json and {OUT_TARGET}/check.json (the contract",
        "  reports) and the embeddings. All of it was written by submission code: read it with size caps, no",
        "  links, strict parsers. Encode can rewrite the reports: collect check.json before resuming encode.",
        "",
        "WHAT THE PROFILE SETS THAT KUBERNETES DOES NOT",
        f"  - pids limit {profile.pids_limit}: the kubelet's podPidsLimit (node-wide setting).",
        f"  - ulimits {dict(profile.ulimits)}, init: no pod field; the container runtime's defaults apply.",
        f"  - log cap {quantity_bytes(profile.log_cap_bytes)}: the kubelet's containerLogMaxSize.",
        "  - encode's per-task wall clock and output cap: the Job's deadline is "
        f"{spec.encode_tasks} x the stage clock + 60 s (--encode-tasks),",
        "    and the output claim's size is the only cap on what it writes.",
        "  - memory-backed emptyDirs count against the memory limit, as tmpfs does in Docker; their sizeLimit is a",
        "    tmpfs size where the kubelet sizes memory volumes, else enforced by eviction.",
        "",
        "SUBMISSIONS",
    ]
    for image in images:
        s = image.submission
        lines += [f"  {s.sha256}", f"    encoder {s.encoder.spec}, torch {image.torch_version}",
                  f"    image   {pull_ref(image.local_ref, spec.registry)} (tag from {image.tag_source.value})",
                  "    jobs    " + ", ".join(job_name(st, image) for st in stages)]
    return "\n".join(lines) + "\n"
