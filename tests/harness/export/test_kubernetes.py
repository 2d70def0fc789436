"""Kubernetes export invariant: every manifest rendered from a sandbox profile is valid against
Kubernetes' published schemas (validated offline, pinned to `K8S_VERSION`), and each Job states the
same envelope the Docker sandbox applies for that stage: the same command, environment, user,
limits, seccomp profile and read-only mounts as `container_config` gives, a GPU only where the harness
pins one, network only for fetch (and never to private ranges), the agent read-only and never in the
image. Nothing here needs a container engine.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
import yaml

from harness.errors import IntakeError, UsageError
from harness.export import render as k8s_render
from harness.export import spec as k8s_spec
from harness.export.kubernetes import (
    K8S_VERSION,
    DataSource,
    DataVolume,
    ExportSpec,
    NetworkMode,
    TagSource,
    collect_submissions,
    export_kubernetes,
    render,
    resolve_images,
    to_yaml,
)
from harness.layers.model import AGENT_DIR, image_ref
from harness.sandbox.agent import AGENT_TARGET
from harness.sandbox.egress import BLOCKED_RANGES
from harness.sandbox.profiles import load_profile
from harness.stage_names import Stage
from harness.stages.build import submission_layer, torch_version_for
from tests.support.archives import (
    TEMPLATE_FILES,
    TEMPLATE_PY,
    RawEntry,
    build_zip,
    zip_of,
)

ROOT_ID = "sha256:" + "ab" * 32
UNITS = {"Ti": 1024**4, "Gi": 1024**3, "Mi": 1024**2, "Ki": 1024}
# Pod Security "restricted" (v1.30): the only volume types it admits
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def quantity(text: str) -> int:
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: validation must work offline."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def inbox(tmp_path: Path) -> list[Path]:
    """Three submissions: a folder (torch pinned), a ZIP (no torch pin), a folder of ZIPs (one ZIP)."""
    folder = tmp_path / "alice"
    folder.mkdir()
    for name, text in TEMPLATE_FILES.items():
        (folder / name).write_text(text)
    bob = tmp_path / "bob.zip"
    bob.write_bytes(zip_of({"model.py": TEMPLATE_PY.replace("TemplateEncoder", "BobEncoder"),
                            "requirements.txt": "numpy\n"}))
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "carol.zip").write_bytes(zip_of({"carol/enc.py": TEMPLATE_PY.replace("TemplateEncoder", "CarolEncoder")}))
    (mail / "notes.txt").write_text("not a submission\n")
    return [folder, bob, mail]


@pytest.fixture
def submissions(inbox, tmp_path):
    return collect_submissions(inbox, store=tmp_path / "store")


@pytest.fixture
def images(submissions):
    return resolve_images(submissions, root_id=ROOT_ID)


def spec_for(tmp_path: Path, profile: str = "t4", data: DataVolume | None = DataVolume(DataSource.CLAIM, "aecc-data"),
             **kw) -> ExportSpec:
    return ExportSpec(out=tmp_path / "k8s", profile=load_profile(profile), data=data, **kw)


def resources(out: Path) -> list[str]:
    return yaml.safe_load((out / "kustomization.yaml").read_text())["resources"]


def jobs_of(rendered) -> dict[tuple[str, str], dict]:
    """(sha12, stage) -> Job."""
    return {(doc["metadata"]["labels"][k8s_spec.LABEL_SUBMISSION], doc["metadata"]["labels"][k8s_spec.LABEL_STAGE]): doc
            for doc in rendered.manifests.values() if doc["kind"] == "Job"}


def pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def container(job: dict) -> dict:
    (only,) = pod(job)["containers"]
    return only


# ---------------------------------------------------------------- schemas, files, kustomization


@pytest.mark.parametrize("profile,data", [
    ("t4", DataVolume(DataSource.CLAIM, "aecc-data")),
    ("t4", DataVolume(DataSource.HOST_PATH, "/srv/aecc")),
    ("cpu", None),
])
def test_every_manifest_is_valid_against_the_published_schemas_offline(tmp_path, images, profile, data, no_network):
    exported = export_kubernetes(spec_for(tmp_path, profile, data), images)
    listed = resources(exported.out)
    kinds = []
    for rel in listed:
        (doc,) = list(yaml.safe_load_all((exported.out / rel).read_text()))
        # strict: unknown fields are errors too; raises on the first problem
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION
        kinds.append(doc["kind"])
    stages = 3 if data is not None else 2
    assert sorted(set(kinds)) == ["ConfigMap", "Job", "Namespace", "NetworkPolicy", "PersistentVolumeClaim"]
    assert kinds.count("Job") == stages * len(images)
    assert kinds.count("PersistentVolumeClaim") == 2 * len(images)


def test_the_validator_rejects_a_broken_job(tmp_path, images, no_network):
    """The schema check above can fail: a wrong type and an unknown field are each caught."""
    rendered = render(spec_for(tmp_path), images)
    job = next(iter(jobs_of(rendered).values()))
    wrong_type = yaml.safe_load(to_yaml(job))
    wrong_type["spec"]["activeDeadlineSeconds"] = "20min"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)
    unknown = yaml.safe_load(to_yaml(job))
    container(unknown)["memoryLimit"] = "12Gi"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_yaml_files_read_back_as_exactly_the_rendered_objects(tmp_path, images):
    rendered = render(spec_for(tmp_path), images)
    for rel, doc in rendered.manifests.items():
        assert yaml.safe_load(rendered.files[rel]) == doc, rel
    configmap = rendered.manifests["configmap-agent.yaml"]
    assert "\n" in next(iter(configmap["data"].values()))  # multi-line files survive


@pytest.mark.parametrize("text", [
    "on", "yes", "null", "0755", "1e3", "- a", "a: b", "#x", "'q'", '"dq"', "back\\slash", "tab\there",
    "  leading", "trailing  ", "line\n", "two\nlines\n", "no final newline\nx", "ends\n\n", "\nstarts",
    "  indented\nblock\n", "é ü 中文 🎧", "\u2028sep", "\x7fdel\x85nel", "\x00nul", "", "\ufeffbom\n",
    "x\n  more indented\n\n\nafter blanks\n", "\tfirst tab\nline\n",
])
def test_any_string_round_trips_through_the_yaml_writer(text):
    doc = {"s": text, "list": [text, {"k": text}], text or "empty-key": 1, "on": True, "n": None, "e": {}, "l": []}
    assert yaml.safe_load(to_yaml(doc)) == doc


def test_kustomization_lists_every_manifest_and_nothing_else(tmp_path, images):
    exported = export_kubernetes(spec_for(tmp_path), images)
    listed = resources(exported.out)
    on_disk = {p.relative_to(exported.out).as_posix() for p in exported.out.rglob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk) and len(listed) == len(set(listed))
    kustomization = yaml.safe_load((exported.out / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "aecc"
    for rel in listed:
        doc = yaml.safe_load((exported.out / rel).read_text())
        name = doc["metadata"]["name"] if doc["kind"] == "Namespace" else doc["metadata"]["namespace"]
        assert name == "aecc"
    assert set(exported.files) == {p.relative_to(exported.out).as_posix() for p in exported.out.rglob("*")
                                   if p.is_file()}


def test_kubectl_kustomize_builds_the_export(tmp_path, images):
    # kubectl is a host tool of the suite (scripts/host-tools.sh installs Debian's kubernetes-client)
    assert shutil.which("kubectl"), "kubectl is missing: run scripts/host-tools.sh (make test does)"
    exported = export_kubernetes(spec_for(tmp_path, namespace="scoring"), images)
    built = subprocess.run(["kubectl", "kustomize", str(exported.out)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert len(docs) == len(resources(exported.out))
    assert all(d["metadata"].get("namespace", d["metadata"]["name"]) == "scoring" for d in docs)


# ---------------------------------------------------------------- the envelope


def test_jobs_carry_the_profiles_envelope(tmp_path, images):
    profile = load_profile("t4")
    rendered = render(spec_for(tmp_path, encode_tasks=3), images)
    jobs = jobs_of(rendered)
    assert len(jobs) == 3 * len(images)
    seccomp_files = [p for p in rendered.files if p.startswith("seccomp/")]
    assert len(seccomp_files) == 1
    for (short, stage), job in jobs.items():
        s = Stage(stage)
        c, p = container(job), pod(job)
        assert job["spec"]["backoffLimit"] == 0 and p["restartPolicy"] == "Never"
        assert job["spec"]["ttlSecondsAfterFinished"] == 7 * 24 * 3600
        clock = profile.stage(s).wall_clock_s
        assert job["spec"]["activeDeadlineSeconds"] == (clock * 3 + 60 if s is Stage.ENCODE else clock)
        assert job["spec"]["suspend"] is (s is not Stage.FETCH)
        assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"] == "12Gi"
        assert quantity(c["resources"]["limits"]["memory"]) == profile.memory_bytes
        assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"] == "2"
        assert c["resources"]["limits"].get("nvidia.com/gpu") == (None if s is Stage.FETCH else 1)
        assert "nvidia.com/gpu" not in c["resources"]["requests"]
        sc, psc = c["securityContext"], p["securityContext"]
        assert (psc["runAsUser"], psc["runAsGroup"], psc["runAsNonRoot"]) == (10001, 10001, True)
        assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (10001, 10001, True)
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["privileged"] is False
        assert psc["seccompProfile"]["type"] == "Localhost"
        assert f"seccomp/{psc['seccompProfile']['localhostProfile']}" == seccomp_files[0]
        assert p["automountServiceAccountToken"] is False and p["enableServiceLinks"] is False
        assert "hostNetwork" not in p and "hostPID" not in p and "hostIPC" not in p
        vols = {v["name"]: v for v in p["volumes"]}
        assert vols["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
        assert vols["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
        assert quantity(vols["tmp"]["emptyDir"]["sizeLimit"]) == profile.tmp_bytes
        assert quantity(vols["shm"]["emptyDir"]["sizeLimit"]) == profile.shm_bytes
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/tmp"]["name"] == "tmp" and mounts["/dev/shm"]["name"] == "shm"
        labels = job["metadata"]["labels"]
        assert labels == job["spec"]["template"]["metadata"]["labels"]
        assert labels[k8s_spec.LABEL_STAGE] == stage and labels["app.kubernetes.io/version"]
        annotations = job["spec"]["template"]["metadata"]["annotations"]
        sha = annotations[k8s_spec.ANNOTATION_SHA256]
        assert sha.startswith(short) and len(sha) == 64
        assert annotations[k8s_spec.ANNOTATION_IMAGE] == c["image"]


def test_cpu_profile_asks_for_no_gpu(tmp_path, images):
    rendered = render(spec_for(tmp_path, "cpu"), images)
    for job in jobs_of(rendered).values():
        assert "nvidia.com/gpu" not in container(job)["resources"]["limits"]
        assert "tolerations" not in pod(job)
        assert not {e["name"] for e in container(job)["env"]} & {"AECC_GPU_MEMORY_LIMIT_BYTES", "CUDA_DEVICE_ORDER"}


def test_a_profile_without_a_seccomp_file_uses_the_runtime_default(tmp_path, images):
    spec = ExportSpec(out=tmp_path / "k8s", profile=load_profile("t4").replace(seccomp="docker-default"))
    rendered = render(spec, images)
    assert not [p for p in rendered.files if p.startswith("seccomp/")]
    for job in jobs_of(rendered).values():
        assert pod(job)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_seccomp_file_written_is_the_profiles_byte_for_byte(tmp_path, images):
    exported = export_kubernetes(spec_for(tmp_path), images)
    (written,) = (exported.out / "seccomp").rglob("*.json")
    source = load_profile("t4").seccomp_path().read_bytes()
    assert written.read_bytes() == source
    assert hashlib.sha256(source).hexdigest()[:12] in written.name  # a changed profile gets a new name
    assert "/var/lib/kubelet/seccomp/" + written.relative_to(exported.out / "seccomp").as_posix() in \
        (exported.out / "README.txt").read_text()


def _harness_config(monkeypatch, tmp_path, profile, image, stage: Stage):
    """What the Docker sandbox is given for this stage: the RunSpec the stage builds, through
    `container_config`. The stage is stopped at `run_stage`; no engine is touched."""
    from harness.sandbox import run as run_mod
    from harness.sandbox.agent import run_contract
    from harness.sandbox.run import container_config
    from harness.stages import encode as encode_mod
    from harness.tasks.arguments import TaskRef

    captured = []

    class Stop(Exception):
        pass

    def fake_run_stage(_client, _profile, spec, *args, **kwargs):
        captured.append(spec)
        raise Stop

    gpu = None if stage is Stage.FETCH else "GPU-00000000-0000-0000-0000-000000000000"
    out, cache = tmp_path / f"out-{stage.value}", tmp_path / f"cache-{stage.value}"
    out.mkdir()
    cache.mkdir()
    if stage is Stage.ENCODE:
        monkeypatch.setattr(encode_mod, "run_stage", fake_run_stage)
        prepared = tmp_path / "prepared"
        (prepared / "audio").mkdir(parents=True)
        spec = encode_mod.EncodeSpec(submission=image.submission, image=image.local_ref,
                                     tasks=(TaskRef("t", "tasks.t", None),), prepared={"t": prepared},
                                     runs=tmp_path / "runs", profile=profile, log_dir=tmp_path / "logs", gpu=gpu)
        with pytest.raises(Stop):
            encode_mod.encode_batch(None, spec, list(spec.tasks), 1)
    else:
        monkeypatch.setattr(run_mod, "run_stage", fake_run_stage)
        with pytest.raises(Stop):
            run_contract(None, profile, image=image.local_ref, encoder=image.submission.encoder.spec,
                         phase=stage.value, out=out, cache=cache, log_path=tmp_path / "log", max_seconds=600.0,
                         gpu=gpu)
    (run_spec,) = captured
    return run_spec, container_config(profile, run_spec, name="aecc-test")


@pytest.mark.parametrize("stage", [Stage.FETCH, Stage.CHECK, Stage.ENCODE])
def test_each_job_runs_what_the_docker_sandbox_runs(monkeypatch, tmp_path, images, stage):
    profile = load_profile("t4")
    image = images[0]
    run_spec, cfg = _harness_config(monkeypatch, tmp_path, profile, image, stage)
    rendered = render(ExportSpec(out=tmp_path / "k8s", profile=profile,
                                 data=DataVolume(DataSource.CLAIM, "aecc-data")), [image])
    job = jobs_of(rendered)[(image.short, stage.value)]
    c, p = container(job), pod(job)

    assert c["command"] == cfg["command"]
    assert {e["name"]: e["value"] for e in c["env"]} == cfg["environment"]
    assert c["workingDir"] == cfg["working_dir"]
    assert f"{c['securityContext']['runAsUser']}:{c['securityContext']['runAsGroup']}" == cfg["user"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is cfg["read_only"]
    assert c["securityContext"]["capabilities"]["drop"] == cfg["cap_drop"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is ("no-new-privileges" not in cfg["security_opt"])
    assert quantity(c["resources"]["limits"]["memory"]) == cfg["mem_limit"] == cfg["memswap_limit"]
    assert float(c["resources"]["limits"]["cpu"]) * 1e9 == cfg["nano_cpus"]
    vols = {v["name"]: v for v in p["volumes"]}
    assert quantity(vols["shm"]["emptyDir"]["sizeLimit"]) == cfg["shm_size"]
    assert f"size={quantity(vols['tmp']['emptyDir']['sizeLimit'])}," in cfg["tmpfs"]["/tmp"]
    (seccomp_opt,) = [o for o in cfg["security_opt"] if o.startswith("seccomp=")]
    assert rendered.files["seccomp/" + p["securityContext"]["seccompProfile"]["localhostProfile"]] == \
        seccomp_opt[len("seccomp="):]
    assert ("nvidia.com/gpu" in c["resources"]["limits"]) is ("device_requests" in cfg)
    network = job["metadata"]["labels"][k8s_spec.LABEL_NETWORK]
    assert network == (NetworkMode.NONE.value if cfg["network_mode"] == "none" else NetworkMode.EGRESS.value)

    # Mounts: the same targets, read-only where the harness mounts read-only (encode's per-task
    # folders are fixed paths in the cluster, named by the jobs file).
    k8s_mounts = {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
    docker_mounts = {m["Target"]: m["ReadOnly"] for m in cfg["mounts"]}
    assert k8s_mounts[AGENT_TARGET] is docker_mounts[AGENT_TARGET] is True
    assert k8s_mounts["/cache"] is docker_mounts["/cache"]
    if stage is Stage.ENCODE:
        assert k8s_mounts["/jobs"] is docker_mounts["/jobs"] is True
        assert k8s_mounts[k8s_spec.AUDIO_TARGET] is docker_mounts["/audio/0"] is True
        assert docker_mounts["/out/0"] is False and k8s_mounts["/out"] is False
        assert run_spec.command[-1] == "/jobs/jobs.json"
    else:
        assert {t: ro for t, ro in k8s_mounts.items() if t not in ("/tmp", "/dev/shm")} == docker_mounts


def test_only_outputs_are_writable_and_only_encode_sees_data(tmp_path, images):
    rendered = render(spec_for(tmp_path), images)
    for (short, stage), job in jobs_of(rendered).items():
        c, p = container(job), pod(job)
        writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
        expected = {"/tmp", "/dev/shm", "/out"} | ({"/cache"} if stage == "fetch" else set())
        assert writable == expected, stage
        vols = {v["name"]: v for v in p["volumes"]}
        assert vols["cache"]["persistentVolumeClaim"]["claimName"] == f"aecc-cache-{short}"
        assert vols["cache"]["persistentVolumeClaim"].get("readOnly", False) is (stage != "fetch")
        assert vols["out"]["persistentVolumeClaim"]["claimName"] == f"aecc-out-{short}"
        data_mounts = [m for m in c["volumeMounts"] if m["name"] == "data"]
        if stage != "encode":
            assert "data" not in vols and not data_mounts
            continue
        assert vols["data"]["persistentVolumeClaim"] == {"claimName": "aecc-data", "readOnly": True}
        sha = job["metadata"]["annotations"][k8s_spec.ANNOTATION_SHA256]
        # only label-free audio and this submission's jobs file: never the volume's root, never meta/
        assert sorted((m["subPath"], m["readOnly"]) for m in data_mounts) == [("audio", True), (f"jobs/{sha}", True)]


def test_the_agent_is_mounted_read_only_from_a_configmap_of_checker(tmp_path, images):
    rendered = render(spec_for(tmp_path), images)
    configmap = rendered.manifests["configmap-agent.yaml"]
    assert configmap["immutable"] is True
    files = {p.relative_to(AGENT_DIR).as_posix(): p for p in AGENT_DIR.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    for job in jobs_of(rendered).values():
        (agent_volume,) = [v for v in pod(job)["volumes"] if v["name"] == "agent"]
        assert agent_volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert agent_volume["configMap"]["defaultMode"] == 0o444
        items = {i["path"]: i["key"] for i in agent_volume["configMap"]["items"]}
        assert set(items) == set(files)
        for path, key in items.items():
            assert configmap["data"][key] == files[path].read_text()
        (mount,) = [m for m in container(job)["volumeMounts"] if m["name"] == "agent"]
        assert mount == {"name": "agent", "mountPath": AGENT_TARGET, "readOnly": True}


def test_the_agent_configmap_is_named_by_its_content(tmp_path, images):
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "__init__.py").write_text("")
    (agent / "contract.py").write_text("print('a')\n")
    first = render(spec_for(tmp_path), images, agent_dir=agent).manifests["configmap-agent.yaml"]
    (agent / "contract.py").write_text("print('b')\n")
    second = render(spec_for(tmp_path), images, agent_dir=agent).manifests["configmap-agent.yaml"]
    assert first["metadata"]["name"] != second["metadata"]["name"]
    (agent / "big.py").write_bytes(b"#" * (k8s_render.CONFIGMAP_DATA_CAP + 1))
    with pytest.raises(UsageError, match="too large for a ConfigMap"):
        render(spec_for(tmp_path), images, agent_dir=agent)


# ---------------------------------------------------------------- network


def _selects(policy: dict, labels: dict) -> bool:
    wanted = policy["spec"]["podSelector"]["matchLabels"]
    return all(labels.get(k) == v for k, v in wanted.items())


def test_network_policies_deny_offline_stages_and_fence_fetch(tmp_path, images):
    rendered = render(spec_for(tmp_path), images)
    offline = rendered.manifests["networkpolicy-offline-deny-all.yaml"]
    egress = rendered.manifests["networkpolicy-fetch-egress.yaml"]
    assert offline["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in offline["spec"] and "egress" not in offline["spec"]  # no rule: nothing allowed
    assert egress["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in egress["spec"]
    internet, dns = egress["spec"]["egress"]
    assert internet == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(BLOCKED_RANGES)}}]}
    assert set(BLOCKED_RANGES) >= {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                                   "100.64.0.0/10"}
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    for (_, stage), job in jobs_of(rendered).items():
        labels = job["spec"]["template"]["metadata"]["labels"]
        # every pod is selected by exactly one policy, and the right one
        assert _selects(offline, labels) is (stage != "fetch")
        assert _selects(egress, labels) is (stage == "fetch")


def test_network_follows_the_profile_not_the_stage_name(tmp_path, images):
    import dataclasses

    profile = load_profile("t4")
    stages = dict(profile.stages)
    stages[Stage.FETCH] = dataclasses.replace(stages[Stage.FETCH], network=False)
    rendered = render(ExportSpec(out=tmp_path / "k8s", profile=profile.replace(stages=stages)), images)
    for (_, stage), job in jobs_of(rendered).items():
        assert job["metadata"]["labels"][k8s_spec.LABEL_NETWORK] == "none"


# ---------------------------------------------------------------- namespace and Pod Security


def _restricted_problems(job: dict) -> list[str]:
    """The checks of Pod Security 'restricted' that these pods could break."""
    p, c = pod(job), container(job)
    problems = []
    for v in p["volumes"]:
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {v['name']}: {kinds}")
    sc, psc = c["securityContext"], p["securityContext"]
    if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        problems.append("runAsNonRoot")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problems.append("capabilities")
    if (sc.get("seccompProfile") or psc.get("seccompProfile", {})).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("seccomp")
    if sc.get("runAsUser") == 0 or psc.get("runAsUser") == 0:
        problems.append("root")
    return problems


def test_namespace_enforces_pod_security_restricted_which_every_pod_meets(tmp_path, images):
    rendered = render(spec_for(tmp_path), images)
    labels = rendered.manifests["namespace.yaml"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{K8S_VERSION}"
    for job in jobs_of(rendered).values():
        assert _restricted_problems(job) == []


def test_a_host_path_cannot_be_enforced_restricted_and_the_export_says_so(tmp_path, images):
    rendered = render(spec_for(tmp_path, data=DataVolume(DataSource.HOST_PATH, "/srv/aecc")), images)
    labels = rendered.manifests["namespace.yaml"]["metadata"]["labels"]
    assert "pod-security.kubernetes.io/enforce" not in labels
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    encode = [j for (_, s), j in jobs_of(rendered).items() if s == "encode"]
    assert all(_restricted_problems(j) == ["volume data: {'hostPath'}"] for j in encode)
    (data,) = [v for v in pod(encode[0])["volumes"] if v["name"] == "data"]
    assert data["hostPath"] == {"path": "/srv/aecc", "type": "Directory"}
    assert any("hostPath" in w for w in rendered.warnings)


def test_without_a_data_volume_no_encode_job_is_rendered(tmp_path, images):
    rendered = render(spec_for(tmp_path, data=None), images)
    assert {s for _, s in jobs_of(rendered)} == {"fetch", "check"}
    assert any("no encode Jobs" in w for w in rendered.warnings)
    assert "no encode Jobs" in rendered.files["README.txt"]


# ---------------------------------------------------------------- images


def test_image_refs_are_the_tags_the_harness_builds(tmp_path, submissions):
    images = resolve_images(submissions, root_id=ROOT_ID)
    for image in images:
        layer = submission_layer(image.submission, torch_version_for(image.submission))
        assert image.local_ref == image_ref(layer, ROOT_ID)
        assert image.local_ref.startswith(f"aecc/submission:{image.submission.sha256[:12]}-")
        assert image.tag_source is TagSource.ROOT_ID
    assert {i.torch_version for i in images} == {"2.2.1", torch_version_for(submissions[1])}
    rendered = render(spec_for(tmp_path, registry="registry.example.org:5000/aecc/"), images)
    for (short, _), job in jobs_of(rendered).items():
        (image,) = [i for i in images if i.short == short]
        assert container(job)["image"] == f"registry.example.org:5000/aecc/{image.local_ref}"
    readme = rendered.files["README.txt"]
    assert all(f"docker push registry.example.org:5000/aecc/{i.local_ref}" in readme for i in images)
    assert not any("unresolved" in w for w in rendered.warnings)


def test_a_frozen_resolution_is_part_of_the_tag(submissions):
    instant = "2025-04-30T23:59:59Z"
    frozen = resolve_images(submissions, root_id=ROOT_ID, resolve_before=instant)
    plain = resolve_images(submissions, root_id=ROOT_ID)
    for image, other in zip(frozen, plain):
        layer = submission_layer(image.submission, torch_version_for(image.submission), instant)
        assert image.local_ref == image_ref(layer, ROOT_ID) != other.local_ref


def test_without_a_root_id_the_tag_is_a_named_placeholder(tmp_path, submissions):
    images = resolve_images(submissions)
    assert all(i.tag_source is TagSource.UNRESOLVED and i.local_ref.endswith("-unresolved") for i in images)
    rendered = render(spec_for(tmp_path), images)
    assert any("unresolved" in w and "--root-id" in w for w in rendered.warnings)
    assert "WARNINGS" in rendered.files["README.txt"]
    for job in jobs_of(rendered).values():
        assert job["metadata"]["annotations"][k8s_spec.ANNOTATION_TAG_SOURCE] == "unresolved"


def test_tags_from_an_engine_use_its_root_image_and_say_what_is_built(tmp_path, submissions):
    import docker.errors

    root_id = "sha256:" + "cd" * 32
    expected = {s.sha256: image_ref(submission_layer(s, torch_version_for(s)), root_id) for s in submissions}
    built = {expected[submissions[0].sha256]}

    def get(ref):
        if ref == "debian:bookworm-slim":
            return SimpleNamespace(id=root_id)
        if ref in built:
            return SimpleNamespace(id="sha256:" + "ef" * 32)
        raise docker.errors.ImageNotFound(ref)

    engine = SimpleNamespace(images=SimpleNamespace(get=get))
    images = resolve_images(submissions, client=engine)
    assert [i.local_ref for i in images] == [expected[s.sha256] for s in submissions]
    assert [i.built_here for i in images] == [True] + [False] * (len(submissions) - 1)
    assert all(i.tag_source is TagSource.ENGINE for i in images)
    assert any("not built" in w for w in render(spec_for(tmp_path), images).warnings)

    def nothing(ref):
        raise docker.errors.ImageNotFound(ref)

    bare = SimpleNamespace(images=SimpleNamespace(get=nothing))
    with pytest.raises(UsageError, match="no root image"):
        resolve_images(submissions, client=bare)


@pytest.mark.parametrize("bad", ["abc", "sha256:XYZ", "sha256:" + "a" * 63])
def test_a_malformed_root_id_is_refused(submissions, bad):
    with pytest.raises(UsageError, match="not an image id"):
        resolve_images(submissions, root_id=bad)


# ---------------------------------------------------------------- inputs and outputs


def test_sources_mix_zips_folders_and_folders_of_zips(inbox, submissions, tmp_path):
    assert [s.encoder.class_name for s in submissions] == ["TemplateEncoder", "BobEncoder", "CarolEncoder"]
    again = collect_submissions([*inbox, inbox[0]], store=tmp_path / "store")  # a duplicate counts once
    assert [s.sha256 for s in again] == [s.sha256 for s in submissions]
    # a folder with code next to a ZIP is a submission (its ZIP is one of its files), not an inbox
    (inbox[0] / "weights.zip").write_bytes(zip_of({"w.bin": b"0"}))
    (alone,) = collect_submissions([inbox[0]], store=tmp_path / "store")
    assert alone.encoder.class_name == "TemplateEncoder"
    with pytest.raises(UsageError, match="does not exist"):
        collect_submissions([tmp_path / "nowhere"], store=tmp_path / "store")
    with pytest.raises(UsageError, match="no submissions"):
        collect_submissions([], store=tmp_path / "store")


def test_a_refused_submission_stops_the_export_naming_its_file(tmp_path, inbox):
    bad = inbox[2] / "mallory.zip"
    bad.write_bytes(build_zip([RawEntry("../evil.py", b"x = 1\n")]))
    with pytest.raises(IntakeError) as caught:
        collect_submissions(inbox, store=tmp_path / "store")
    assert str(bad) in caught.value.summary and "nothing was written" in caught.value.fix


def test_the_export_folder_is_written_whole_or_not_at_all(tmp_path, images):
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "old.yaml").write_text("kind: Old\n")
    with pytest.raises(UsageError, match="not empty"):
        export_kubernetes(spec_for(tmp_path), images)
    assert [p.name for p in out.iterdir()] == ["old.yaml"]
    (out / "old.yaml").unlink()
    export_kubernetes(spec_for(tmp_path), images)  # an empty folder is fine
    assert (out / "kustomization.yaml").is_file()

    import dataclasses

    profile = load_profile("t4")
    stages = dict(profile.stages)
    stages[Stage.CHECK] = dataclasses.replace(stages[Stage.CHECK], writable_mounts=False)
    broken = ExportSpec(out=tmp_path / "other", profile=profile.replace(stages=stages))
    with pytest.raises(UsageError, match="writable mounts"):
        export_kubernetes(broken, images)
    assert not (tmp_path / "other").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".other.tmp")]


@pytest.mark.parametrize("kwargs,message", [
    ({"namespace": "Scoring"}, "namespace"),
    ({"registry": "https://registry.example.org"}, "registry"),
    ({"storage_class": "Fast_SSD"}, "storage-class"),
    ({"encode_tasks": 0}, "encode-tasks"),
])
def test_spec_names_are_checked_before_rendering(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        ExportSpec(out=tmp_path / "k8s", profile=load_profile("t4"), **kwargs)


@pytest.mark.parametrize("source,ref", [(DataSource.CLAIM, "Data_Claim"), (DataSource.HOST_PATH, "srv/aecc"),
                                        (DataSource.HOST_PATH, "/srv/../etc")])
def test_data_volume_names_are_checked(source, ref):
    with pytest.raises(UsageError):
        DataVolume(source, ref)


def test_cli_renders_an_export(tmp_path, inbox, monkeypatch):
    from harness.cli import main

    monkeypatch.setenv("AECC_HOME", str(tmp_path / "home"))
    out = tmp_path / "cluster"
    code = main(["export", "kubernetes", *map(str, inbox), "--out", str(out), "--data-claim", "aecc-data",
                 "--root-id", ROOT_ID, "--registry", "registry.example.org/aecc", "--namespace", "scoring",
                 "--encode-tasks", "2", "--output-size", "20GiB", "--ttl-after-finished", "24h"])
    assert code == 0
    listed = resources(out)
    assert sum(r.endswith("job-encode.yaml") for r in listed) == 3
    encode = yaml.safe_load((out / next(r for r in listed if r.endswith("job-encode.yaml"))).read_text())
    assert encode["metadata"]["namespace"] == "scoring"
    assert encode["spec"]["activeDeadlineSeconds"] == 2 * 7200 + 60
    assert encode["spec"]["ttlSecondsAfterFinished"] == 24 * 3600
    assert container(encode)["image"].startswith("registry.example.org/aecc/aecc/submission:")
    pvc = yaml.safe_load((out / next(r for r in listed if r.endswith("pvc-out.yaml"))).read_text())
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"

    assert main(["export", "kubernetes", str(inbox[0]), "--out", str(tmp_path / "x"), "--namespace", "Bad"]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["export", "kubernetes", str(inbox[0]), "--out", str(tmp_path / "y"), "--data-claim", "a",
              "--data-host-path", "/b"])
    assert exited.value.code == 2

