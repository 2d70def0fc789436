"""Pretrained dependencies of X-ARES tasks, as an offline model store.

Why a store: two tasks the organizers scored in 2025 need files from the Hugging Face Hub when X-ARES
builds them. `librispeech` (ASR) loads the `Qwen/Qwen2.5-0.5B` causal LM and its tokenizer, and
`clotho` (retrieval) loads the `google-bert/bert-base-uncased` tokenizer (X-ARES
`TaskConfig.pretrained_dependencies`: "qwen2", "bert-base-uncased:tokenizer"). Scoring runs without
network, so a machine with hub access downloads them once, `aecc models fetch --out DIR`, in a
trusted runtime container on the fetch stage's network. The host then writes `DIR/manifest.json` with
every file's sha256 (schema: harness/schemas/models-manifest.schema.json). The store is copied to the
scoring machines, and `aecc score --models DIR` checks it against its manifest before the score
container starts. A changed, missing, extra or linked file is refused, as an infrastructure error
naming the file. The store is mounted read-only into the trusted score container only; no submission
container ever sees it.

Layout, the one X-ARES needs: X-ARES calls `from_pretrained("Qwen/Qwen2.5-0.5B")`, which
transformers reads as a directory relative to the process's working directory when one exists there
(`xares/models/asr.py`, `xares/utils.py:download_hf_model_to_local`). So the store holds each
repository under its own id:

    DIR/manifest.json
    DIR/Qwen/Qwen2.5-0.5B/{config.json, generation_config.json, model.safetensors, tokenizer.json, ...}
    DIR/google-bert/bert-base-uncased/{config.json, tokenizer.json, tokenizer_config.json, vocab.txt}

The score agent links these folders into its writable working directory and forces the Hugging Face
libraries offline (`checker.taskload.lay_out_models`).

Importing this module reads nothing and starts nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.errors import InfraError, UsageError
from harness.safeio import sha256_file, write_atomic

MANIFEST_NAME = "manifest.json"
SCHEMA_NAME = "models-manifest"
MANIFEST_KIND = "aecc-models"
DEFAULT_ENDPOINT = "https://huggingface.co"
#: where the store is mounted in the score container
MOUNT_TARGET = "/models"
#: a manifest is a few kB; anything far larger is not one
MANIFEST_CAP = 4 * 1024**2
#: the fetch agent's answer
ANSWER_CAP = 1024**2

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class Part(str, enum.Enum):
    """What of a hub repository X-ARES loads."""

    MODEL = "model"  # config + weights (AutoModelForCausalLM.from_pretrained)
    TOKENIZER = "tokenizer"  # AutoTokenizer.from_pretrained


class Origin(str, enum.Enum):
    """Where a store's files came from."""

    HUB = "hub"  # downloaded by `aecc models fetch`
    LOCAL = "local"  # written on this machine (the tests' stand-ins); never for real numbers


@dataclasses.dataclass(frozen=True)
class Dependency:
    """One X-ARES pretrained dependency: its X-ARES name, its hub repository and what to download.

    `required` lists the files X-ARES cannot load the dependency without; `patterns` what fetch
    downloads (weights only as safetensors; no PyTorch pickles, no other frameworks)."""

    xares_name: str
    repo: str
    parts: tuple[Part, ...]
    patterns: tuple[str, ...]
    required: tuple[str, ...]
    #: one of these must be present too (weights: one file or a sharded index)
    required_any: tuple[str, ...] = ()

    @property
    def describe(self) -> str:
        return f"{self.repo} ({' and '.join(p.value for p in self.parts)})"


#: X-ARES 0.1.3's pretrained dependencies (xares/utils.py download_hf_model_to_local)
DEPENDENCIES: Mapping[str, Dependency] = {
    "qwen2": Dependency(
        "qwen2", "Qwen/Qwen2.5-0.5B", (Part.MODEL, Part.TOKENIZER),
        patterns=("*.json", "*.safetensors", "merges.txt", "vocab.json", "LICENSE"),
        required=("config.json", "tokenizer.json", "tokenizer_config.json"),
        required_any=("model.safetensors", "model.safetensors.index.json")),
    "bert-base-uncased:tokenizer": Dependency(
        "bert-base-uncased:tokenizer", "google-bert/bert-base-uncased", (Part.TOKENIZER,),
        # config.json names the model type, which AutoTokenizer needs when tokenizer_config.json does not
        patterns=("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                  "LICENSE"),
        required=("tokenizer_config.json", "vocab.txt")),
}


def dependency(name: str) -> Dependency:
    """The dependency X-ARES calls `name`.

    Raises:
        UsageError: a name X-ARES 0.1.3 does not know how to load.
    """
    try:
        return DEPENDENCIES[name]
    except KeyError:
        raise UsageError(f"unknown X-ARES pretrained dependency {name!r}",
                         expected="one of " + ", ".join(DEPENDENCIES), found=repr(name),
                         fix="X-ARES 0.1.3 loads only these; a task naming another cannot be scored offline") from None


# --------------------------------------------------------------------------------------------------
# The store and its manifest


@dataclasses.dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the model's folder, '/'-separated
    sha256: str
    bytes: int


@dataclasses.dataclass(frozen=True)
class StoredModel:
    repo: str
    xares_dependency: str
    parts: tuple[Part, ...]
    files: tuple[StoredFile, ...]
    revision: str | None = None  # the hub commit it was downloaded at
    dtype: str | None = None  # the checkpoint's dtype (config.json), where it has weights

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclasses.dataclass(frozen=True)
class ModelStore:
    """A verified store: every file listed, present, a regular file, and of the recorded sha256."""

    root: Path
    models: tuple[StoredModel, ...]
    origin: Origin
    endpoint: str | None
    created_at: str
    digest: str  # sha256 of manifest.json: what a result scored with this store can name

    def model_for(self, xares_name: str) -> StoredModel | None:
        return next((m for m in self.models if m.xares_dependency == xares_name), None)

    def has(self, xares_name: str) -> bool:
        return self.model_for(xares_name) is not None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


#: (path, size, mtime_ns, ctime_ns, inode) -> sha256, so that one process hashes a 1 GB model once;
#: any write (and any utime that would hide one) changes ctime, so a changed file is hashed again
_HASHED: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    digest = _HASHED.get(key)
    if digest is None:
        digest = sha256_file(path)
        _HASHED[key] = digest
    return digest


def _model_dir(root: Path, repo: str) -> Path:
    return Path(root) / repo


def _dtype(model_dir: Path) -> str | None:
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def _files_under(model_dir: Path) -> list[str]:
    out = []
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() or path.is_symlink():
            out.append(path.relative_to(model_dir).as_posix())
    return out


def write_manifest(root: Path, dependencies: Sequence[str], *, origin: Origin | str,
                   endpoint: str | None = None, revisions: Mapping[str, str | None] | None = None) -> ModelStore:
    """Hash the files of each dependency's folder under `root` and write `root/manifest.json`.

    Called by the host after `aecc models fetch` (and by the tests for their stand-ins): the files
    are hashed here, on the trusted side, not reported by the container that wrote them.

    Raises:
        InfraError: a dependency's folder is missing or lacks a file X-ARES needs, or holds a link.
        UsageError: an unknown dependency name.
    """
    root = Path(root)
    origin = Origin(origin)
    models = []
    for name in dict.fromkeys(dependencies):
        dep = dependency(name)
        model_dir = _model_dir(root, dep.repo)
        if not model_dir.is_dir():
            raise InfraError(f"model store {root}: no folder for {dep.repo}", expected=f"{model_dir} with {dep.describe}",
                             found="missing", fix="run `aecc models fetch --out DIR` again")
        files = []
        for rel in _files_under(model_dir):
            path = model_dir / rel
            if path.is_symlink() or not path.is_file():
                raise InfraError(f"model store {root}: {dep.repo}/{rel} is not a regular file",
                                 expected="regular files only", found="a link or special file",
                                 fix="replace it with the file itself")
            files.append({"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size})
        _require_files(root, dep, {f["path"] for f in files})
        models.append({"repo": dep.repo, "xares_dependency": dep.xares_name, "parts": [p.value for p in dep.parts],
                       "revision": (revisions or {}).get(dep.xares_name), "dtype": _dtype(model_dir), "files": files})
    document = {"schema_version": 1, "kind": MANIFEST_KIND, "created_at": _now(), "origin": origin.value,
                "endpoint": endpoint, "models": models}
    from harness import schemas

    schemas.validate(SCHEMA_NAME, document)
    write_atomic(root / MANIFEST_NAME, json.dumps(document, indent=1) + "\n", mode=0o644)
    return verify_store(root)


def _require_files(root: Path, dep: Dependency, present: set[str]) -> None:
    missing = [f for f in dep.required if f not in present]
    if dep.required_any and not any(f in present for f in dep.required_any):
        missing.append(" or ".join(dep.required_any))
    if missing:
        raise InfraError(f"model store {root}: {dep.repo} lacks what X-ARES loads",
                         expected=f"{dep.describe}: " + ", ".join(dep.required + dep.required_any),
                         found="missing " + ", ".join(missing), fix="run `aecc models fetch --out DIR` again")


def _refuse(root: Path, summary: str, *, expected: str, found: str, fix: str | None = None) -> InfraError:
    return InfraError(f"model store {root}: {summary}", expected=expected, found=found,
                      fix=fix or f"fetch the store again (`aecc models fetch --out {root}`) and copy it whole")


def _safe_rel(rel: str) -> bool:
    parts = rel.split("/")
    return bool(parts) and all(_PART.match(p) and p not in (".", "..") for p in parts)


def verify_store(root: Path | str) -> ModelStore:
    """Check every file of the store against its manifest, before any container sees it.

    Refused, as an infrastructure error naming the file: no or an invalid manifest; a listed file
    missing, of another size or sha256, a link or not a regular file; a file the manifest does not
    list; a model lacking what X-ARES loads.

    Raises:
        UsageError: `root` is not a folder.
        InfraError: the store does not match its manifest.
    """
    from harness import schemas
    from harness.safeio import UnsafeOutput, read_capped

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"model store {root} is not a folder", expected="the folder `aecc models fetch --out` wrote",
                         found="missing" if not root.exists() else "not a folder",
                         fix="pass --models DIR with the fetched store")
    manifest_path = root / MANIFEST_NAME
    try:
        raw = read_capped(manifest_path, MANIFEST_CAP)
        document = json.loads(raw)
    except FileNotFoundError:
        raise _refuse(root, f"no {MANIFEST_NAME}", expected=f"{MANIFEST_NAME} listing every file with its sha256",
                      found="absent") from None
    except (OSError, ValueError, UnsafeOutput) as exc:
        summary = exc.summary if isinstance(exc, UnsafeOutput) else str(exc)
        raise _refuse(root, f"{MANIFEST_NAME} cannot be read", expected="a JSON manifest",
                      found=summary[:300]) from None
    found = schemas.problems(SCHEMA_NAME, document)
    if found:
        raise _refuse(root, f"{MANIFEST_NAME} does not follow its schema",
                      expected=f"harness/schemas/{SCHEMA_NAME}.schema.json", found="; ".join(found))
    listed: set[str] = {MANIFEST_NAME}
    models = []
    for entry in document["models"]:
        dep = dependency(entry["xares_dependency"])
        if entry["repo"] != dep.repo or not _REPO.match(entry["repo"]):
            raise _refuse(root, f"model {entry['repo']!r} is not what X-ARES calls {dep.xares_name!r}",
                          expected=dep.repo, found=entry["repo"])
        model_dir = _model_dir(root, dep.repo)
        for part in (root / dep.repo.split("/")[0], model_dir):
            if part.is_symlink() or not part.is_dir():
                raise _refuse(root, f"{part.relative_to(root)} is not a folder", expected="a plain folder",
                              found="a link" if part.is_symlink() else "missing or not a folder")
        files = []
        for item in entry["files"]:
            rel = item["path"]
            shown = f"{dep.repo}/{rel}"
            if not _safe_rel(rel):
                raise _refuse(root, f"manifest lists an unsafe path {shown!r}", expected="a relative path inside "
                              "the model's folder", found=repr(rel))
            path = model_dir / rel
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise _refuse(root, f"{shown} is missing", expected=f"{shown} (sha256 {item['sha256'][:16]}...)",
                              found="absent") from None
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
                raise _refuse(root, f"{shown} is not a regular file", expected="a regular file",
                              found="a symbolic link" if stat.S_ISLNK(st.st_mode) else "a special file")
            if st.st_size != item["bytes"]:
                raise _refuse(root, f"{shown} does not match the manifest", expected=f"{item['bytes']} bytes",
                              found=f"{st.st_size} bytes")
            digest = file_sha256(path)
            if digest != item["sha256"]:
                raise _refuse(root, f"{shown} does not match the manifest", expected=f"sha256 {item['sha256']}",
                              found=f"sha256 {digest}")
            listed.add(f"{dep.repo}/{rel}")
            files.append(StoredFile(rel, item["sha256"], item["bytes"]))
        _require_files(root, dep, {f.path for f in files})
        models.append(StoredModel(dep.repo, dep.xares_name, tuple(Part(p) for p in entry["parts"]), tuple(files),
                                  entry.get("revision"), entry.get("dtype")))
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise _refuse(root, f"{rel} is a symbolic link", expected="no links in the store", found="a link")
        if path.is_file() and rel not in listed:
            raise _refuse(root, f"{rel} is not in the manifest", expected="only the files manifest.json lists",
                          found=f"an extra file {rel}", fix="remove it, or fetch the store again")
    repos = [m.repo for m in models]
    if len(set(repos)) != len(repos):
        raise _refuse(root, "a model is listed twice", expected="each repository once", found=", ".join(repos))
    return ModelStore(root=root, models=tuple(models), origin=Origin(document["origin"]),
                      endpoint=document.get("endpoint"), created_at=document["created_at"],
                      digest=hashlib.sha256(raw).hexdigest())


# --------------------------------------------------------------------------------------------------
# Which tasks need what


def _literal_dependencies(path: Path) -> tuple[str, ...]:
    """`pretrained_dependencies=[...]` of the `TaskConfig(...)` call in a task file, read with ast."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return ()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "pretrained_dependencies":
                    try:
                        value = ast.literal_eval(kw.value)
                    except ValueError:
                        return ()
                    # names X-ARES cannot load it only logs ("not supported for download"): none needs the store
                    return tuple(v for v in (value or ()) if isinstance(v, str) and v in DEPENDENCIES)
    return ()


def task_dependencies(task: Any, registry: Any = None) -> tuple[str, ...]:
    """X-ARES's pretrained dependencies of a task: a registry name, a `TaskEntry`, or a `TaskRef`
    (a registry task's from the registry; a task file's read from its `TaskConfig(...)` call)."""
    from harness.tasks.registry import TaskEntry, load_registry

    if isinstance(task, TaskEntry):
        return task.pretrained_dependencies
    if isinstance(task, str):
        return (registry or load_registry()).get(task).pretrained_dependencies
    file = getattr(task, "file", None)
    if file is not None:
        return _literal_dependencies(file)
    reg = registry or load_registry()
    name = getattr(task, "task_name", None) or getattr(task, "label", None)
    if name in reg and reg.get(name).xares_module == getattr(task, "module", None):
        return reg.get(name).pretrained_dependencies
    return ()


def missing_dependencies(needed: Iterable[str], store: ModelStore | None) -> list[Dependency]:
    """The dependencies `store` lacks (all of them without a store)."""
    return [dependency(n) for n in needed if store is None or not store.has(n)]


def cpu_problem(needed: Iterable[str], store: ModelStore | None) -> str | None:
    """Why these dependencies cannot train on a CPU, or None.

    With transformers 5 X-ARES's ASR model loads the checkpoint's own dtype; the real Qwen2.5-0.5B is
    bfloat16, and `xares/models/asr.py` concatenates float32 adapter output with bf16 embeddings
    under a CUDA-only autocast: on a CPU that fails ('mat1 and mat2 must have the same dtype')."""
    if store is None:
        return None
    for name in needed:
        model = store.model_for(name)
        if model is not None and Part.MODEL in model.parts and model.dtype in ("bfloat16", "float16"):
            return (f"{model.repo} is {model.dtype}: with transformers 5 X-ARES trains it only on a GPU "
                    "(its autocast is CUDA-only; on a CPU the probe fails with a dtype mismatch)")
    return None


def no_model_reason(needed: Sequence[str], store: ModelStore | None, store_path: Path | None = None) -> str | None:
    """Why a task with these dependencies cannot be scored with `store`, or None."""
    missing = missing_dependencies(needed, store)
    if not missing:
        return None
    names = ", ".join(d.describe for d in missing)
    if store is None:
        return f"no model: needs {names}; no model store given (`aecc models fetch --out DIR`, then --models DIR)"
    return f"no model: needs {names}, which the model store {store_path or store.root} does not hold"


# --------------------------------------------------------------------------------------------------
# Fetch: the download runs in the trusted runtime image, on the fetch stage's network


@dataclasses.dataclass(frozen=True)
class ModelFetchSpec:
    out: Path
    dependencies: tuple[str, ...]
    runtime: str  # the runtime image (it has huggingface_hub and transformers; the host has neither)
    profile: Any  # SandboxProfile
    log_dir: Path
    endpoint: str = DEFAULT_ENDPOINT
    ca_bundle: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out).expanduser().resolve())
        object.__setattr__(self, "dependencies", tuple(dict.fromkeys(self.dependencies)))
        for name in self.dependencies:
            dependency(name)
        if not self.dependencies:
            raise UsageError("nothing to fetch", expected="at least one X-ARES pretrained dependency",
                             found="none", fix="name tasks that declare pretrained dependencies (librispeech, clotho)")
        if not re.match(r"^https?://[^/\s]+", self.endpoint):
            raise UsageError("the hub endpoint is not a URL", expected="https://host[:port]", found=self.endpoint,
                             fix="pass --endpoint https://huggingface.co or a mirror")


def endpoint_host(endpoint: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(endpoint).hostname or endpoint


def default_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def _earlier_revisions(out: Path) -> dict[str, str | None]:
    """The revisions an earlier manifest recorded, so that growing a store keeps them."""
    try:
        document = json.loads((out / MANIFEST_NAME).read_text())
        return {m["xares_dependency"]: m.get("revision") for m in document["models"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def fetch(client: Any, spec: ModelFetchSpec, *, progress: Callable[[str], None] = print) -> ModelStore:
    """Download `spec.dependencies` into `spec.out` and write its manifest.

    A store that already holds every dependency and verifies is left as it is (unless `force`).

    Raises:
        InfraError: the hub cannot be reached (naming the host tried), a download failed, or the
            engine failed; never anything else's fault.
    """
    from harness import paths
    from harness.safeio import UnsafeOutput, read_json
    from harness.sandbox.agent import agent_command, agent_mount, ca_bundle_mount
    from harness.stage_names import Stage
    from harness.sandbox.run import run_stage
    from harness.sandbox.spec import Mount, Outcome, RunSpec

    out = spec.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a folder", expected="a folder (created if missing)", found="a file",
                         fix="choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if not spec.force and (out / MANIFEST_NAME).is_file():
        try:
            store = verify_store(out)
        except InfraError:
            store = None
        if store is not None and all(store.has(n) for n in spec.dependencies):
            progress(f"models: {out} already holds {', '.join(spec.dependencies)} (verified; --force to fetch again)")
            return store
    earlier = _earlier_revisions(out)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # stale until rewritten below
    out.chmod(0o777)  # written by the sandbox user (uid 10001)
    host = endpoint_host(spec.endpoint)
    with tempfile.TemporaryDirectory(prefix="models-", dir=paths.scratch()) as tmp:
        ctl = Path(tmp) / "ctl"
        answer_dir = Path(tmp) / "out"
        ctl.mkdir()
        answer_dir.mkdir()
        ctl.chmod(0o755)
        answer_dir.chmod(0o777)
        jobs = [{"repo": dependency(n).repo, "xares_dependency": n, "patterns": list(dependency(n).patterns),
                 "parts": [p.value for p in dependency(n).parts]} for n in spec.dependencies]
        (ctl / "jobs.json").write_text(json.dumps(jobs))
        (ctl / "jobs.json").chmod(0o644)
        ca_mounts, ca_env = ca_bundle_mount(spec.ca_bundle)
        env = {"HF_ENDPOINT": spec.endpoint, "HF_HOME": "/tmp/hf", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_XET": "1", **ca_env}
        run_spec = RunSpec(stage=Stage.FETCH, image=spec.runtime,
                           command=agent_command("models", "fetch", "--jobs", "/ctl/jobs.json", "--out", MOUNT_TARGET,
                                                 "--answer", "/answer/answer.json", "--endpoint", spec.endpoint),
                           mounts=(agent_mount(), Mount(out, MOUNT_TARGET, read_only=False), Mount(ctl, "/ctl"),
                                   Mount(answer_dir, "/answer", read_only=False), *ca_mounts),
                           env=env, workdir="/tmp")
        progress(f"models: downloading {', '.join(dependency(n).describe for n in spec.dependencies)} from "
                 f"{spec.endpoint} in a runtime container (network on)")
        result = run_stage(client, spec.profile, run_spec, spec.log_dir / "models-fetch.log")
        result.raise_for_infra()
        try:
            answer = read_json(answer_dir / "answer.json", ANSWER_CAP)
        except (FileNotFoundError, UnsafeOutput, ValueError):
            answer = None
    if not isinstance(answer, dict) or not answer.get("ok"):
        kind = (answer or {}).get("error") if isinstance(answer, dict) else None
        detail = str((answer or {}).get("detail") or "") if isinstance(answer, dict) else ""
        if kind == "unreachable":
            raise InfraError(f"the Hugging Face Hub at {host} cannot be reached from the fetch container",
                             expected=f"HTTPS to {host} ({spec.endpoint}) on the fetch stage's network",
                             found=f"{host}: {detail[:500]}",
                             fix="run `aecc models fetch --out DIR` on a machine with hub access (or point "
                                 "--endpoint / HF_ENDPOINT at a reachable mirror), then copy DIR to the scoring "
                                 "machines", log_path=result.log_path)
        if result.outcome is not Outcome.OK and kind is None:
            detail = f"the fetch container ended with {result.outcome.value}: {result.detail}"
        raise InfraError(f"downloading the models from {host} failed",
                         expected=f"{', '.join(spec.dependencies)} downloaded from {spec.endpoint}",
                         found=(detail or result.log_tail(800).strip())[:1500],
                         fix="read the log; a gated or renamed repository needs a token or a mirror",
                         log_path=result.log_path)
    revisions = dict(earlier)
    revisions.update({m["xares_dependency"]: m.get("revision") for m in answer.get("models", [])
                      if isinstance(m, dict) and isinstance(m.get("xares_dependency"), str)})
    keep = list(spec.dependencies)
    # A store fetched earlier with other dependencies keeps them (their folders are still there).
    for name, dep in DEPENDENCIES.items():
        if name not in keep and _model_dir(out, dep.repo).is_dir():
            keep.append(name)
    store = write_manifest(out, keep, origin=Origin.HUB, endpoint=spec.endpoint, revisions=revisions)
    progress(f"models: {out}: " + ", ".join(f"{m.repo} ({m.bytes / 1e6:.0f} MB)" for m in store.models)
             + f"; manifest sha256 {store.digest[:16]}")
    return store


__all__ = ["DEFAULT_ENDPOINT", "DEPENDENCIES", "Dependency", "ModelFetchSpec", "MANIFEST_NAME", "MOUNT_TARGET",
           "ModelStore", "Origin", "Part", "StoredFile", "StoredModel", "cpu_problem", "default_endpoint",
           "dependency", "endpoint_host", "fetch", "file_sha256", "missing_dependencies", "no_model_reason",
           "task_dependencies", "verify_store", "write_manifest"]
