"""The Kubernetes export in memory: every manifest the sandbox profile maps to, and its YAML text.

A pure function of the spec, the images and two files (the agent, the profile's seccomp file), so
that the tests can hold each Job against what `harness.sandbox.run.container_config` gives the same
stage, and so that the writer (`harness.export.kubernetes`) can write an export whole or not at all.

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
import hashlib
import json
import math
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import yaml

from harness import __version__
from harness.errors import UsageError
from harness.export.readme import readme
from harness.export.resolve import UNRESOLVED, ExportImage, TagSource, pull_ref
from harness.export.spec import (
    ANNOTATION_AGENT,
    ANNOTATION_ENCODER,
    ANNOTATION_HARNESS,
    ANNOTATION_IMAGE,
    ANNOTATION_PROFILE,
    ANNOTATION_SHA256,
    ANNOTATION_TAG_SOURCE,
    ANNOTATION_TORCH,
    AUDIO_TARGET,
    CACHE_TARGET,
    GPU_RESOURCE,
    GPU_STAGES,
    JOBS_FILE,
    JOBS_TARGET,
    K8S_VERSION,
    LABEL_NETWORK,
    LABEL_STAGE,
    LABEL_SUBMISSION,
    MANAGED_BY,
    OUT_TARGET,
    DataSource,
    ExportSpec,
    NetworkMode,
    cache_claim,
    job_name,
    out_claim,
    quantity_bytes,
    quantity_cpu,
    stages_for,
    user_ids,
)
from harness.layers.model import AGENT_DIR, tree_hash
from harness.sandbox.agent import (
    AGENT_TARGET,
    CACHE_ENV,
    OFFLINE_ENV,
    SUBMISSION_SRC,
    agent_command,
)
from harness.sandbox.egress import BLOCKED_RANGES
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage

__all__ = ["CONFIGMAP_DATA_CAP", "Rendered", "deadline_s", "network_mode", "render", "stage_command", "stage_env",
           "to_yaml"]

#: a ConfigMap (the whole object) must stay under etcd's 1 MiB; leave room for its metadata
CONFIGMAP_DATA_CAP = 900 * 1024

_CONFIGMAP_KEY = re.compile(r"[^-._a-zA-Z0-9]")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Every file of an export, by path relative to the export folder, and what needs saying."""

    files: Mapping[str, str]
    manifests: Mapping[str, Mapping[str, Any]]  # the Kubernetes objects, by the file that holds each
    images: tuple[ExportImage, ...]
    warnings: tuple[str, ...]


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


def _claim(spec: ExportSpec, name: str, size: int, image: ExportImage, role: str) -> dict[str, Any]:
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


def stage_command(stage: Stage, image: ExportImage, max_seconds: float) -> tuple[str, ...]:
    """The command the harness runs for the stage (`run_contract`, `encode.encode_batch`)."""
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


def _job(spec: ExportSpec, image: ExportImage, stage: Stage, agent: _Agent,
         seccomp: Mapping[str, Any]) -> dict[str, Any]:
    profile = spec.profile
    policy = profile.stage(stage)
    if not policy.writable_mounts:
        raise UsageError(f"stage {stage.value} may not have writable mounts",
                         expected=f"a profile whose stages.{stage.value}.writable_mounts is true (the report "
                                  f"or the embeddings are written to {OUT_TARGET})",
                         found=f"profile {profile.name}: false", fix="use a profile that allows them")
    uid, gid = user_ids(profile)
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


# ---------------------------------------------------------------- render and write


def render(spec: ExportSpec, images: Sequence[ExportImage], *, agent_dir: Path = AGENT_DIR) -> Rendered:
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


def _warnings(spec: ExportSpec, images: Sequence[ExportImage]) -> list[str]:
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


# ---------------------------------------------------------------- YAML

# Keys stay plain only where no YAML reader could take them for anything else (the same rule as
# before PyYAML wrote these files): every manifest key the export writes is such a name.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


class _Key(str):
    """A mapping key (values are quoted, keys only where they must be)."""


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper with every string value double-quoted (multi-line text as a `|` block where
    that keeps it exactly). Plain `yaml.safe_dump` leaves strings plain that PyYAML reads back as
    strings but Go's YAML (kubectl, the API server) reads as numbers: a label value `0123e4567890`
    (a sha256 prefix) is a float there, `0o755` an int."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML falls back to double quotes where a block cannot hold the text (trailing spaces, controls).
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else '"')


def _represent_key(dumper: yaml.SafeDumper, key: _Key) -> yaml.ScalarNode:
    plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
    return dumper.represent_scalar("tag:yaml.org,2002:str", str.__str__(key), style=None if plain else '"')


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Key, _represent_key)


def _plain(value: Any) -> Any:
    """The document as fresh dicts, lists, strings, ints, booleans and None (so no object is written
    twice as a YAML alias); anything else is a mistake in a manifest."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, not {key!r}")
            out[_Key(key)] = _plain(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)  # a str enum's value, not its name
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML here")


def to_yaml(doc: Mapping[str, Any]) -> str:
    """One YAML document in block style. Strings are always quoted (or `|` blocks), so no value is
    ever read back as another type ('on', '0755', 'null', '1e3' stay strings), by PyYAML or by Go."""
    if not isinstance(doc, Mapping) or not doc:
        raise TypeError("a YAML document here is a non-empty mapping")
    return yaml.dump(_plain(doc), Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=False,
                     width=2**31)
