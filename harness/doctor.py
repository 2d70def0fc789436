"""`aecc doctor`: check everything the harness needs before it does any work.

Each check reports what is required, what was found and, when they differ, the command that
fixes it. The report is a table for people and JSON for scripts; the exit code is non-zero when
a `fail` means the harness cannot work (a `warn` means it works with a limitation, e.g. no GPU).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.errors import HarnessError
from harness.sandbox import engine as eng

MIN_API = (1, 41)  # Docker 20.10: device requests, cgroup v2, the `init` and `pids_limit` options
MIN_FREE_DISK = 20 * 1024**3  # the runtime image alone is about 6.4 GB; a second torch adds several
WARN_FREE_DISK = 40 * 1024**3


class Status(str, enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclasses.dataclass(frozen=True)
class Requirement:
    id: str
    status: Status
    required: str
    found: str
    fix: str = ""

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status.value}


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Requirement, ...]
    engine: dict | None
    gpus: tuple[dict, ...]
    build_options: dict

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "engine": self.engine,
            "gpus": list(self.gpus),
            "build_options": self.build_options,
        }


def _gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def data_checks(env: Path | str, tasks: Iterable[str] | None = None) -> list[Requirement]:
    """`aecc doctor --data ENV`: one check per task folder (or named task), by sizes only (fast):
    ok when ready, warn when placed by hand (no manifest), fail with the first problem otherwise."""
    from harness.data.manifest import TaskState, verify_env

    env = Path(env)
    result = verify_env(env, list(tasks) if tasks else None, deep=False)
    checks = []
    if not env.is_dir():
        return [Requirement("data", Status.FAIL, f"a task data folder at {env}", "missing",
                            f"`aecc data fetch --task-set icme2025-final --out {env}`")]
    ready = [t.task for t in result.tasks if t.state is TaskState.READY]
    checks.append(Requirement("data", Status.OK if result.ok else Status.FAIL,
                              f"task data under {env} that matches its manifests (sizes; `aecc data verify` reads "
                              "the checksums)", f"{len(ready)} of {len(result.tasks)} task folder(s) ready",
                              "" if result.ok else f"`aecc data verify {env}` names every problem"))
    for t in result.tasks:
        check_id = "data_" + re.sub(r"[^a-z_]", "_", t.task.lower())
        if t.state is TaskState.READY:
            checks.append(Requirement(check_id, Status.OK, f"task {t.task}: its manifest's files and the marker",
                                      f"ready: {t.files} file(s), {t.bytes / 1e6:.1f} MB, record {t.record_id}"
                                      + (f" version {t.version}" if t.version else "")))
        elif t.state is TaskState.UNMANAGED:
            checks.append(Requirement(check_id, Status.WARN, f"task {t.task}: a manifest to check the data against",
                                      "placed by hand: the marker is there, no manifest.json (not checked)",
                                      "fine for a hidden task; `aecc data fetch` writes a manifest for public ones"))
        else:
            first = t.problems[0]
            more = f" (and {len(t.problems) - 1} more)" if len(t.problems) > 1 else ""
            checks.append(Requirement(check_id, Status.FAIL, f"task {t.task}: {first.expected}",
                                      f"{first.finding.value} {first.path}: {first.found}{more}", first.fix))
    return checks


def model_checks(models: Path, *, gpu: bool) -> list[Requirement]:
    """The model store (`--models DIR`): does it match its manifest, and which tasks can be scored
    with it and which cannot, and why (one check per registry task that loads a pretrained model)."""
    from harness.tasks import models as store_mod
    from harness.tasks.registry import load_registry

    checks = []
    store = None
    try:
        store = store_mod.verify_store(models)
        listed = ", ".join(f"{m.repo} ({m.bytes / 1e6:.0f} MB{', ' + m.dtype if m.dtype else ''})"
                           for m in store.models)
        origin = "" if store.origin is store_mod.Origin.HUB else " (local stand-ins: not for real numbers)"
        checks.append(Requirement("models", Status.OK if store.origin is store_mod.Origin.HUB else Status.WARN,
                            f"a model store at {models} matching its manifest",
                            f"{listed}; every file matches manifest.json{origin}",
                            "" if store.origin is store_mod.Origin.HUB else "fetch the real models: aecc models fetch"))
    except HarnessError as exc:
        checks.append(Requirement("models", Status.FAIL, exc.expected or f"a model store at {models}",
                            f"{exc.summary}: {exc.found}" if exc.found else exc.summary, exc.fix or ""))
    for entry in load_registry():
        if not entry.pretrained_dependencies:
            continue
        needed = ", ".join(store_mod.dependency(n).describe for n in entry.pretrained_dependencies)
        reason = store_mod.no_model_reason(entry.pretrained_dependencies, store, models) if store is not None \
            else f"not scoreable: the model store {models} is refused (see the 'models' check)"
        if reason is None and not gpu:
            problem = store_mod.cpu_problem(entry.pretrained_dependencies, store)
            reason = f"not scoreable here: {problem}" if problem else None
        task_id = "task_" + re.sub(r"[^a-z_]", "_", entry.name)
        checks.append(Requirement(task_id, Status.OK if reason is None else Status.WARN,
                            f"task {entry.name}: {needed} in the store",
                            "scoreable with this store" if reason is None else reason,
                            "" if reason is None else "aecc models fetch --out DIR (on a machine with hub access)"
                            if store is None or not all(store.has(n) for n in entry.pretrained_dependencies)
                            else "score it on a GPU machine (--profile t4)"))
    return checks


def run_doctor(
    profile_name: str = "cpu",
    *,
    connect: Callable[[], Any] = eng.connect,
    list_gpus: Callable[[], list] | None = None,
    models: Path | None = None,
    data: Path | None = None,
) -> DoctorReport:
    """Run every check; never raises for a failed check, only reports it.

    With `models` (a model store folder) it also checks the store against its manifest and says
    which tasks with pretrained dependencies can be scored with it, and why the others cannot."""
    import psutil

    from harness.layers.build import current_ref
    from harness.layers.model import runtime_layer
    from harness.layers.options import BuildOptions
    from harness.layers.rootfs import image_or_none
    from harness.sandbox import gpu as gpu_mod
    from harness.sandbox.profiles import load_profile

    checks: list[Requirement] = []
    add = checks.append

    profile = None
    try:
        profile = load_profile(profile_name)
        seccomp = profile.seccomp_path()
        if seccomp is not None and not seccomp.is_file():
            raise HarnessError("seccomp file missing", found=str(seccomp))
        add(Requirement("profile", Status.OK, f"a valid sandbox profile {profile_name!r}", str(profile.source)))
    except HarnessError as exc:
        add(Requirement("profile", Status.FAIL, f"a valid sandbox profile {profile_name!r}", exc.summary, exc.fix or ""))

    client = None
    info = None
    try:
        client = connect()
        info = eng.engine_info(client)
        api = tuple(int(x) for x in info.api_version.split(".")[:2])
        add(
            Requirement(
                "engine",
                Status.OK if api >= MIN_API else Status.FAIL,
                f"Docker engine, API >= {MIN_API[0]}.{MIN_API[1]}",
                f"Docker {info.server_version}, API {info.api_version}",
                "" if api >= MIN_API else "upgrade the engine (Debian: apt-get install docker.io)",
            )
        )
    except HarnessError as exc:
        add(Requirement("engine", Status.FAIL, exc.expected or "a Docker engine", exc.found or exc.summary, exc.fix or ""))

    if info is None:
        for cid in ("storage_driver", "cgroup", "seccomp", "nvidia_runtime", "disk", "images"):
            add(Requirement(cid, Status.SKIPPED, "a reachable engine", "no engine"))
    else:
        add(
            Requirement(
                "storage_driver",
                Status.OK if info.storage_driver == "overlay2" else Status.WARN,
                "overlay2",
                info.storage_driver,
                "" if info.storage_driver == "overlay2" else "configure dockerd with \"storage-driver\": \"overlay2\"",
            )
        )
        add(Requirement("cgroup", Status.INFO, "cgroup v1 or v2", f"v{info.cgroup_version} ({info.cgroup_driver})"))
        add(
            Requirement(
                "seccomp",
                Status.OK if info.seccomp else Status.FAIL,
                "seccomp support in the engine",
                ", ".join(info.security_options) or "none",
                "" if info.seccomp else "use an engine built with seccomp (Debian's docker.io is)",
            )
        )
        if profile is not None and profile.runtime:
            has = profile.runtime in info.runtimes
            add(
                Requirement(
                    "oci_runtime",
                    Status.OK if has else Status.FAIL,
                    f"runtime {profile.runtime!r} (named by profile {profile.name})",
                    ", ".join(info.runtimes),
                    "" if has else "install gVisor (`runsc install`) and restart dockerd",
                )
            )
        needs_gpu = profile is not None and profile.gpu is not None
        add(
            Requirement(
                "nvidia_runtime",
                Status.OK if info.nvidia else (Status.FAIL if needs_gpu else Status.WARN),
                "NVIDIA Container Toolkit (for GPU profiles)",
                "present" if info.nvidia else "absent; runtimes: " + ", ".join(info.runtimes),
                "" if info.nvidia else "install nvidia-container-toolkit; `nvidia-ctk runtime configure --runtime=docker`",
            )
        )
        from harness.sandbox import egress

        network = egress.network_for(client)
        rules = egress.rules_present()
        egress_ok = network == egress.NETWORK and rules is not False
        add(
            Requirement(
                "egress",
                Status.OK if egress_ok else Status.WARN,
                "build and fetch stages on aecc-egress: internet yes, host and private networks no",
                f"network {network}; drop rules " + {True: "present", False: "missing", None: "not checked (not root)"}[rules],
                "" if egress_ok else "run `sudo bash scripts/engine-setup.sh` (creates the network and its iptables rules)",
            )
        )
        disk_path = info.docker_root_dir if os.path.isdir(info.docker_root_dir) else "/"
        free = shutil.disk_usage(disk_path).free
        add(
            Requirement(
                "disk",
                Status.OK if free >= WARN_FREE_DISK else (Status.WARN if free >= MIN_FREE_DISK else Status.FAIL),
                f">= {_gib(MIN_FREE_DISK)} free at {disk_path} ({_gib(WARN_FREE_DISK)} comfortable)",
                f"{_gib(free)} free",
                "" if free >= WARN_FREE_DISK else "free space: `aecc images prune`, `docker system prune`",
            )
        )

    gpus: list = []
    gpu_found = "none"
    try:
        gpus = (list_gpus or gpu_mod.list_gpus)()
        gpu_found = "; ".join(
            f"{g.index}: {g.name} {g.uuid} {_gib(g.memory_total_bytes)} sm_{g.compute_capability.replace('.', '')}"
            for g in gpus
        ) or "none"
    except HarnessError as exc:
        gpu_found = f"none ({exc.found})"
    needs_gpu = profile is not None and profile.gpu is not None
    add(
        Requirement(
            "gpus",
            Status.OK if gpus else (Status.FAIL if needs_gpu else Status.INFO),
            "NVIDIA GPUs via NVML" + (" (profile needs one)" if needs_gpu else " (optional)"),
            gpu_found,
            "" if gpus or not needs_gpu else "run on a GPU machine with the driver, or use --profile cpu",
        )
    )

    mem = psutil.virtual_memory().total
    want = profile.memory_bytes if profile else 12 * 1024**3
    add(
        Requirement(
            "ram",
            Status.OK if mem >= want + 2 * 1024**3 else (Status.WARN if mem >= want else Status.FAIL),
            f">= {_gib(want)} for one sandbox plus room for the host",
            _gib(mem),
            "" if mem >= want else "use a machine with more RAM, or a profile with a smaller memory cap",
        )
    )
    cpus = os.cpu_count() or 1
    add(
        Requirement(
            "cpus",
            Status.OK if profile is None or cpus >= profile.cpus else Status.WARN,
            f">= {profile.cpus:g} CPUs (the profile's share)" if profile else "any",
            str(cpus),
        )
    )

    options = None
    try:
        options = BuildOptions.from_environment()
        described = options.describe()
        add(
            Requirement(
                "build_network",
                Status.OK,
                "a CA bundle and pip index options for image builds",
                f"CA bundle {described['ca_bundle'] or '(image default)'}; index {described['pip_index_url']}"
                + (f"; extra {', '.join(described['pip_extra_index_urls'])}" if described["pip_extra_index_urls"] else ""),
            )
        )
    except HarnessError as exc:
        add(Requirement("build_network", Status.FAIL, exc.expected or "", exc.found or exc.summary, exc.fix or ""))
    has_debootstrap = shutil.which("debootstrap") is not None
    add(
        Requirement(
            "debootstrap",
            Status.OK if has_debootstrap else Status.INFO,
            "debootstrap, to build the base image offline when no registry is reachable",
            shutil.which("debootstrap") or "absent",
            "" if has_debootstrap else "apt-get install debootstrap",
        )
    )
    if client is not None:
        try:
            ref = current_ref(client, runtime_layer())
            built = ref is not None and image_or_none(client, ref) is not None
            add(
                Requirement(
                    "images",
                    Status.OK if built else Status.WARN,
                    "the current runtime image",
                    ref if built else f"not built ({ref or 'no base file system yet'})",
                    "" if built else "run `aecc images build` (or `make images`)",
                )
            )
        except HarnessError as exc:
            add(Requirement("images", Status.WARN, "the current runtime image", exc.summary, exc.fix or ""))

    if models is not None:
        checks.extend(model_checks(Path(models), gpu=bool(gpus)))
    if data is not None:

        checks.extend(data_checks(Path(data)))

    return DoctorReport(
        checks=tuple(checks),
        engine=info.to_dict() if info else None,
        gpus=tuple(g.to_dict() for g in gpus),
        build_options=options.describe() if options else {},
    )


def render(report: DoctorReport, console: Any) -> None:
    from rich.table import Table

    colours = {Status.OK: "green", Status.INFO: "cyan", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIPPED: "dim"}
    table = Table(title="aecc doctor", show_lines=False)
    for column in ("check", "status", "required", "found", "fix"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        table.add_row(c.id, f"[{colours[c.status]}]{c.status.value}[/]", c.required, c.found, c.fix)
    console.print(table)
    console.print("[green]ready[/]" if report.ok else "[red]not ready: fix the failed checks above[/]")


def default_profile_for_host() -> str:
    """t4 where a GPU is visible to NVML, cpu elsewhere (used when no --profile is given)."""
    from harness.sandbox import gpu as gpu_mod

    try:
        return "t4" if gpu_mod.list_gpus() else "cpu"
    except HarnessError:
        return "cpu"


__all__ = ["Requirement", "DoctorReport", "Status", "run_doctor", "render", "default_profile_for_host", "model_checks"]
