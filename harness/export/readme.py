"""The README written with every Kubernetes export: what is there, what the cluster must provide,
how to push the images and run the Jobs, and what the profile sets that Kubernetes cannot.

The manifests alone cannot say what only the cluster can enforce (a CNI that honours
NetworkPolicy, the seccomp file on the nodes, GPUs through the device plugin) nor that check and
encode wait to be resumed; an operator who applies them without this would get a sandbox with holes
and no error. Written from the same spec and names as the manifests (`harness.export.spec`).
"""

from __future__ import annotations

from typing import Sequence

from harness import __version__
from harness.export.resolve import ExportImage, pull_ref
from harness.export.spec import (
    AUDIO_TARGET,
    GPU_RESOURCE,
    K8S_VERSION,
    LABEL_STAGE,
    OUT_TARGET,
    DataSource,
    ExportSpec,
    job_name,
    quantity_bytes,
    stages_for,
    user_ids,
)
from harness.sandbox.agent import AGENT_TARGET


def readme(spec: ExportSpec, images: Sequence[ExportImage], seccomp_local: str | None, agent_name: str,
           warnings: Sequence[str]) -> str:
    profile = spec.profile
    ns = spec.namespace
    stages = stages_for(spec)
    gpu = profile.gpu is not None
    gid = user_ids(profile)[1]
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
            f"  - The data volume ({where}), readable by uid {user_ids(profile)[0]}, laid out as:",
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
