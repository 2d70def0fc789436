"""A model store is used only when every file matches its manifest: a changed, missing, extra or linked
file is refused as an infrastructure error naming the file, before any container starts; a task whose
pretrained dependency the store lacks (or, on a CPU, whose bf16 LM X-ARES cannot train) is refused
before any work; `aecc models fetch` fails as an infrastructure error naming the host when the hub
cannot be reached; and `aecc doctor --models` says which tasks the store makes scoreable and why not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness import schemas
from harness.errors import InfraError, UsageError
from harness.sandbox.profiles import load_profile
from harness.stages import score as score_stage
from harness.tasks import models
from harness.tasks.arguments import resolve_task, resolve_tasks

AECC = str(Path(sys.executable).parent / "aecc")
QWEN = "Qwen/Qwen2.5-0.5B"
BERT = "google-bert/bert-base-uncased"


# ---- the manifest: written by the host, checked before use ---------------------------------------


def test_a_written_store_verifies_and_its_manifest_follows_the_schema(make_store):
    store = make_store()
    document = json.loads((store.root / models.MANIFEST_NAME).read_text())
    jsonschema.validate(document, schemas.load("models-manifest"))
    assert [m.repo for m in store.models] == [QWEN, BERT]
    assert store.has("qwen2") and store.has("bert-base-uncased:tokenizer")
    assert store.origin is models.Origin.LOCAL and store.model_for("qwen2").dtype == "float32"
    again = models.verify_store(store.root)
    assert again.digest == store.digest and again.models == store.models


@pytest.mark.parametrize("damage, found", [
    (lambda root: (root / QWEN / "model.safetensors").write_bytes(b"\x01" * 4096), "sha256"),  # same size
    (lambda root: (root / QWEN / "tokenizer.json").write_bytes(b"{}"), "bytes"),
    (lambda root: (root / QWEN / "config.json").unlink(), "absent"),
])
def test_a_changed_or_missing_file_is_refused_naming_it(make_store, damage, found):
    store = make_store()
    before = {p.name for p in store.root.rglob("*")}
    damage(store.root)
    with pytest.raises(InfraError) as err:
        models.verify_store(store.root)
    message = str(err.value)
    assert QWEN in message and found in message
    assert any(name in message for name in before if name.endswith((".json", ".safetensors")))


def test_a_file_the_manifest_does_not_list_is_refused(make_store):
    store = make_store()
    (store.root / BERT / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(InfraError, match="pytorch_model.bin is not in the manifest"):
        models.verify_store(store.root)


def test_a_link_in_the_store_is_refused(make_store, tmp_path):
    store = make_store()
    vocab = store.root / BERT / "vocab.txt"
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes(vocab.read_bytes())
    vocab.unlink()
    vocab.symlink_to(outside)  # same bytes, so only the link itself can give it away
    with pytest.raises(InfraError, match="vocab.txt is not a regular file"):
        models.verify_store(store.root)


def test_no_manifest_or_a_bad_one_is_refused(make_store, tmp_path):
    with pytest.raises(UsageError, match="not a folder"):
        models.verify_store(tmp_path / "absent")
    store = make_store()
    manifest = store.root / models.MANIFEST_NAME
    document = json.loads(manifest.read_text())
    document["models"][0]["xares_dependency"] = "gpt2"
    manifest.write_text(json.dumps(document))
    with pytest.raises(InfraError, match="does not follow its schema"):
        models.verify_store(store.root)
    manifest.unlink()
    with pytest.raises(InfraError, match="no manifest.json"):
        models.verify_store(store.root)


def test_a_store_lacking_what_xares_loads_cannot_be_written(tmp_path):
    folder = tmp_path / "store" / QWEN
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    with pytest.raises(InfraError, match="lacks what X-ARES loads") as err:
        models.write_manifest(tmp_path / "store", ["qwen2"], origin="hub")
    assert "tokenizer.json" in str(err.value) and "model.safetensors" in str(err.value)
    with pytest.raises(UsageError, match="unknown X-ARES pretrained dependency"):
        models.write_manifest(tmp_path / "store", ["gpt2"], origin="hub")


def test_a_rewritten_file_is_hashed_again_within_one_process(make_store):
    store = make_store()
    path = store.root / QWEN / "model.safetensors"
    models.verify_store(store.root)  # fills the per-process hash cache
    stat = path.stat()
    path.write_bytes(b"\x02" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: only ctime tells
    with pytest.raises(InfraError, match="model.safetensors does not match"):
        models.verify_store(store.root)


# ---- which tasks need what --------------------------------------------------------------------------


def test_dependencies_come_from_the_registry_and_from_task_files(tmp_path):
    assert models.task_dependencies("librispeech") == ("qwen2",)
    assert models.task_dependencies("clotho") == ("bert-base-uncased:tokenizer",)
    assert models.task_dependencies("esc50") == ()
    assert models.task_dependencies(resolve_task("librispeech")) == ("qwen2",)
    task_file = tmp_path / "my_asr_task.py"
    task_file.write_text("from xares.task import TaskConfig\n\ndef my_asr_config(encoder):\n"
                         "    return TaskConfig(encoder=encoder, name='my_asr', pretrained_dependencies=['qwen2'])\n")
    assert models.task_dependencies(resolve_task(str(task_file))) == ("qwen2",)


def test_missing_models_and_the_cpu_dtype_are_reasons(make_store):
    assert "no model store given" in models.no_model_reason(("qwen2",), None)
    tokenizer_only = make_store(["bert-base-uncased:tokenizer"])
    reason = models.no_model_reason(("qwen2",), tokenizer_only)
    assert QWEN in reason and str(tokenizer_only.root) in reason
    assert models.no_model_reason(("bert-base-uncased:tokenizer",), tokenizer_only) is None
    assert models.cpu_problem(("qwen2",), make_store()) is None  # the float32 stand-in trains on a CPU
    problem = models.cpu_problem(("qwen2",), make_store(dtype="bfloat16"))
    assert "bfloat16" in problem and "GPU" in problem


# ---- the score stage refuses before its container starts ----------------------------------------------


def _spec(tmp_path, store_root, tasks=("librispeech", "clotho"), profile="cpu"):
    return score_stage.ScoreSpec(resolve_tasks(list(tasks)), tmp_path / "runs", "SubmissionX", "aecc/runtime:none",
                                 load_profile(profile), tmp_path / "logs", models=store_root)


class NoEngine:
    """Any use of the engine fails the test: the refusal must come first."""

    def __getattr__(self, name):
        raise AssertionError(f"the engine was used ({name}) before the store was checked")


def test_the_score_stage_refuses_a_tampered_store_before_any_container(make_store, tmp_path):
    store = make_store()
    assert score_stage.check_models(_spec(tmp_path, store.root)).digest == store.digest
    (store.root / BERT / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nb\n")
    with pytest.raises(InfraError) as err:
        score_stage.start(NoEngine(), _spec(tmp_path, store.root), max_wait_s=1)
    assert f"{BERT}/vocab.txt does not match the manifest" in str(err.value)


def test_the_score_stage_refuses_a_task_whose_model_is_missing(make_store, tmp_path):
    tokenizer_only = make_store(["bert-base-uncased:tokenizer"])
    score_stage.check_models(_spec(tmp_path, tokenizer_only.root, tasks=("clotho", "esc50")))  # fine
    with pytest.raises(InfraError, match="task librispeech cannot be scored: no model: needs Qwen/Qwen2.5-0.5B"):
        score_stage.start(NoEngine(), _spec(tmp_path, tokenizer_only.root), max_wait_s=1)
    with pytest.raises(InfraError, match="no model store given"):
        score_stage.start(NoEngine(), _spec(tmp_path, None), max_wait_s=1)


def test_the_real_bf16_model_is_refused_on_a_cpu_profile(make_store, tmp_path):
    bf16 = make_store(dtype="bfloat16")
    with pytest.raises(InfraError, match="profile cpu.*bfloat16.*GPU"):
        score_stage.check_models(_spec(tmp_path, bf16.root))
    score_stage.check_models(_spec(tmp_path, bf16.root, profile="t4"))  # a GPU profile may train it


# ---- fetch: where the hub cannot be reached ---------------------------------------------------------


def test_fetch_spec_defaults_and_refusals(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert models.default_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    assert models.default_endpoint() == "https://hf-mirror.example"
    assert models.endpoint_host("https://huggingface.co") == "huggingface.co"
    with pytest.raises(UsageError, match="nothing to fetch"):
        models.ModelFetchSpec(tmp_path, (), "img", None, tmp_path)
    with pytest.raises(UsageError, match="not a URL"):
        models.ModelFetchSpec(tmp_path, ("qwen2",), "img", None, tmp_path, endpoint="huggingface.co")


def test_fetch_from_an_unreachable_hub_is_an_infrastructure_error_naming_the_host(client, tmp_path):
    # `.invalid` never resolves (RFC 2606): the same path as this machine's missing route to the hub,
    # on any machine, without downloading a gigabyte where the hub is reachable
    out = tmp_path / "store"
    proc = subprocess.run([AECC, "models", "fetch", "--out", str(out), "--endpoint", "https://hub.invalid"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2, proc.stdout + proc.stderr  # 2: infrastructure, never 1
    text = " ".join(proc.stderr.split())
    assert "the Hugging Face Hub at hub.invalid cannot be reached" in text
    assert "hub.invalid:" in text and "on a machine with hub access" in text
    assert not (out / models.MANIFEST_NAME).exists()
    assert [p for p in out.rglob("*") if p.is_file()] == []


# ---- doctor -----------------------------------------------------------------------------------------


def _checks(found):
    return {c.id: c for c in found}


def test_doctor_lists_which_tasks_the_store_makes_scoreable(make_store):
    from harness.doctor import Status, model_checks

    both = _checks(model_checks(make_store().root, gpu=False))
    assert both["models"].status is Status.WARN and "stand-ins" in both["models"].found  # origin local
    assert both["task_librispeech"].status is Status.OK and both["task_clotho"].status is Status.OK

    tokenizer_only = _checks(model_checks(make_store(["bert-base-uncased:tokenizer"]).root, gpu=True))
    assert tokenizer_only["task_clotho"].status is Status.OK
    assert tokenizer_only["task_librispeech"].status is Status.WARN
    assert QWEN in tokenizer_only["task_librispeech"].found and "models fetch" in tokenizer_only["task_librispeech"].fix

    bf16 = _checks(model_checks(make_store(dtype="bfloat16").root, gpu=False))
    assert bf16["task_librispeech"].status is Status.WARN and "GPU" in bf16["task_librispeech"].found
    assert _checks(model_checks(make_store(dtype="bfloat16").root, gpu=True))["task_librispeech"].status is Status.OK


def test_doctor_fails_a_tampered_store_and_its_json_follows_the_schema(make_store):
    from harness.doctor import Status, model_checks, run_doctor

    store = make_store()
    (store.root / QWEN / "tokenizer.json").write_bytes(b"{ }")
    checks = _checks(model_checks(store.root, gpu=False))
    assert checks["models"].status is Status.FAIL and "tokenizer.json" in checks["models"].found
    assert checks["task_librispeech"].status is Status.WARN and "refused" in checks["task_librispeech"].found

    def no_engine():
        from harness.errors import EngineUnavailable

        raise EngineUnavailable("no engine in this test", expected="none", found="none")

    report = run_doctor("cpu", connect=no_engine, list_gpus=list, models=store.root).to_dict()
    jsonschema.validate(report, schemas.load("doctor"))
    assert not report["ok"] and {"models", "task_librispeech", "task_clotho"} <= {c["id"] for c in report["checks"]}
