"""A task-set plan names every task of each track of the set exactly once, either as scored or with the
reason it cannot be (no X-ARES module, data not supplied, no model, needs a GPU, no kNN in X-ARES),
and the missing share of a track is the weight of its missing tasks over the weight of its tasks;
`check_data` reports "data not supplied" from file names alone, with X-ARES's own shard patterns
(checked against X-ARES's configs in the runtime image)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from harness.errors import InfraError, UsageError
from harness.report.tasksets import plan_lines, render_plan, track_summary
from harness.tasks.arguments import resolve_task
from harness.tasks.registry import Track, load_registry
from harness.tasks.sets import Missing, check_data, plan

HIDDEN = ("inside_outside_car", "finger_snap", "key_scratching", "subway_broadcast", "liveenv")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


# ---- check_data ---------------------------------------------------------------------------------


def test_data_is_supplied_only_with_the_marker_and_every_split(tmp_path, lay_out):
    lay_out(tmp_path, ["finger_snap", "esc50"])
    assert check_data(["finger_snap", "esc50"], tmp_path) == []
    (tmp_path / "finger_snap" / "finger_snap_test-000000.tar").unlink()
    (tmp_path / "esc50" / ".audio_tar_ready").unlink()
    found = dict(check_data(["finger_snap", "esc50", "liveenv"], tmp_path))
    assert found["finger_snap"].startswith("data not supplied: no shard matches")
    assert "finger_snap_test*.tar" in found["finger_snap"] and "hidden dataset" in found["finger_snap"]
    assert ".audio_tar_ready is missing" in found["esc50"] and "hidden" not in found["esc50"]
    assert found["liveenv"] == f"data not supplied: no folder {tmp_path / 'liveenv'} (a hidden dataset: only the " \
                               "organizer has its audio)"


def test_check_data_takes_task_refs_and_returns_them_as_given(tmp_path, lay_out):
    lay_out(tmp_path, ["subway_broadcast"])
    refs = [resolve_task("subway_broadcast"), resolve_task("key_scratching")]
    assert check_data(refs, tmp_path) == [(refs[1], check_data(["key_scratching"], tmp_path)[0][1])]
    task_file = tmp_path / "mine_task.py"
    task_file.write_text("from xares.task import TaskConfig\n\ndef mine_config(encoder):\n"
                         "    return TaskConfig(encoder=encoder, name='mine')\n")
    mine = resolve_task(str(task_file))
    assert check_data([mine], tmp_path)[0][1] == f"data not supplied: no folder {tmp_path / 'mine'}"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / ".audio_tar_ready").write_bytes(b"")
    assert "no shard matches" in check_data([mine], tmp_path)[0][1]  # a task file: any *.tar
    (tmp_path / "mine" / "whatever-000000.tar").write_bytes(b"")
    assert check_data([mine], tmp_path) == []
    assert "no data folder" in check_data(["esc50"], None)[0][1]


# ---- the plan -----------------------------------------------------------------------------------


def _items(p, track):
    return {i.task: i for i in p.tracks[Track(track)].items}


def test_every_task_of_the_set_is_planned_once_per_track(registry, tmp_path):
    for name in registry.task_set_names():
        p = plan(name, tmp_path, None)
        for track in Track:
            assert [i.task for i in p.tracks[track].items] == [e.name for e in registry.task_set(name, track)]
        assert set(p.tasks) == {e.name for e in registry if e.task_sets[name]}
        json.dumps(p.to_dict())


def test_without_data_nothing_runs_and_the_whole_weight_is_missing(registry, tmp_path):
    p = plan("icme2025-final", tmp_path, None)
    assert p.run == () and not p.complete
    a = p.tracks[Track.A]
    assert a.total_weight == sum(e.eval_weight for e in registry.task_set("icme2025-final", "A"))
    assert a.missing_weight == a.total_weight and a.missing_share == 1.0 and a.unweighted == ()
    assert {i.missing for i in a.items} == {Missing.NO_DATA}  # data is looked at first


def test_the_hidden_tasks_alone_give_their_exact_weight_share(registry, tmp_path, lay_out):
    lay_out(tmp_path, HIDDEN)
    p = plan("icme2025-final", tmp_path, None)
    assert set(p.run) == set(HIDDEN)
    a, b = p.tracks[Track.A], p.tracks[Track.B]
    total_a = sum(e.eval_weight for e in registry.task_set("icme2025-final", "A"))
    assert a.missing_weight == total_a - 5 * 5000 and a.missing_share == pytest.approx(1 - 25000 / total_a)
    # liveenv has no kNN in X-ARES and is not in the final Track B: four hidden tasks there
    assert sorted(i.task for i in b.items if i.runs) == sorted(set(HIDDEN) - {"liveenv"})
    assert b.missing_share == pytest.approx(1 - 20000 / b.total_weight)
    assert _items(p, "A")["librispeech"].missing is Missing.NO_DATA  # data is looked at before the model


def test_the_paper_set_names_what_x_ares_cannot_run_and_what_has_no_knn(registry, tmp_path, lay_out):
    runnable = [e.name for e in registry.task_set("paper", "A") if e.audio_tar_globs]
    lay_out(tmp_path, runnable)
    p = plan("paper", tmp_path, None)
    a, b = _items(p, "A"), _items(p, "B")
    assert a["speechocean762"].missing is Missing.NO_MODULE and "no task module" in a["speechocean762"].detail
    assert a["nsynth_pitch"].missing is Missing.NO_MODULE and b["nsynth_pitch"].missing is Missing.NO_MODULE
    assert p.tracks[Track.A].unweighted == ("speechocean762", "nsynth_pitch")
    assert b["desed"].missing is Missing.NO_KNN and b["maestro"].missing is Missing.NO_KNN
    assert a["desed"].runs and a["maestro"].runs and "desed" in p.run
    assert a["clotho"].missing is Missing.NO_MODEL and "bert-base-uncased" in a["clotho"].detail
    weight_b = {e.name: e.eval_weight for e in registry.task_set("paper", "B")}
    assert p.tracks[Track.B].missing_weight == weight_b["desed"] + weight_b["maestro"]  # nsynth_pitch: no weight
    assert p.tracks[Track.A].missing_weight == registry.get("clotho").eval_weight  # no model; the rest unweighted


def test_a_model_store_makes_the_asr_and_retrieval_tasks_run(tmp_path, lay_out, make_store):
    data = lay_out(tmp_path / "data", ["librispeech", "clotho"])
    store = make_store()
    p = plan("icme2025-final", data, store.root)
    assert {"librispeech", "clotho"} <= set(p.run) and p.models_digest == store.digest
    tokenizer_only = make_store(["bert-base-uncased:tokenizer"])
    p = plan("icme2025-final", data, tokenizer_only.root)
    assert "clotho" in p.run and p.tasks["librispeech"][0] is Missing.NO_MODEL
    bf16 = make_store(dtype="bfloat16")
    assert "librispeech" in plan("icme2025-final", data, bf16.root).run  # gpu unknown: not checked
    assert "librispeech" in plan("icme2025-final", data, bf16.root, gpu=True).run
    assert plan("icme2025-final", data, bf16.root, gpu=False).tasks["librispeech"][0] is Missing.NO_GPU
    refs = plan("icme2025-final", data, store.root).task_refs()
    assert [r.label for r in refs] == ["clotho", "librispeech"]


def test_a_tampered_store_or_an_unknown_set_stops_the_plan(tmp_path, make_store):
    store = make_store()
    (store.root / "Qwen" / "Qwen2.5-0.5B" / "model.safetensors").write_bytes(b"\x07" * 4096)
    with pytest.raises(InfraError, match="model.safetensors does not match"):
        plan("icme2025-final", tmp_path, store.root)
    with pytest.raises(UsageError, match="Did you mean: paper"):
        plan("papr", tmp_path, None)


def test_the_plan_is_rendered_with_its_reasons_and_shares(tmp_path, lay_out):
    lay_out(tmp_path, HIDDEN)
    p = plan("icme2025-final", tmp_path, None)
    lines = plan_lines(p)
    assert lines[0].startswith("task set icme2025-final: 5 task(s) to score: inside_outside_car, finger_snap")
    assert lines[1] == track_summary(p, Track.A) and "5 of 27 tasks run" in lines[1]
    assert f"({100 * p.tracks[Track.A].missing_share:.1f}%)" in lines[1]
    assert any(line.startswith("not run: librispeech: data not supplied: no folder") for line in lines)
    console = Console(record=True, width=200)
    render_plan(p, console)
    text = console.export_text()
    assert "task set icme2025-final, Track A" in text and "data not supplied" in text and "runs" in text
    assert "Track B: 4 of 20 tasks run" in text


# ---- the shard patterns are X-ARES's own --------------------------------------------------------------

CONFIGS = r"""
import glob, importlib, json, os, torch, tasks
class Encoder(torch.nn.Module):
    sampling_rate, output_dim, hop_size_in_ms = 16000, 8, 10
out = {}
for path in sorted(glob.glob(os.path.join(list(tasks.__path__)[0], "*_task.py"))):
    module = importlib.import_module("tasks." + os.path.basename(path)[:-3])
    config = getattr(module, [a for a in dir(module) if a.endswith("_config")][0])(Encoder())
    out[module.__name__] = {"name": config.name, "disabled": config.disabled,
                            "deps": list(config.pretrained_dependencies or []),
                            "globs": list(dict.fromkeys(config.audio_tar_name_of_split.values()))}
print(json.dumps(out))
"""


def test_registry_shard_patterns_and_dependencies_are_what_xares_configs_say(client, registry, tmp_path):
    from harness.layers.build import build_chain
    from harness.layers.model import runtime_layer

    runtime = build_chain(client, runtime_layer(), log=lambda m: None)[-1].image
    out = client.containers.run(runtime, ["python", "-c", CONFIGS], remove=True, network_mode="none", stderr=False)
    configs = json.loads(out.decode().strip().splitlines()[-1])
    assert {e.xares_module for e in registry if e.xares_module} == set(configs)
    for entry in registry:
        if entry.xares_module is None:
            assert entry.audio_tar_globs is None and entry.pretrained_dependencies == ()
            continue
        xares = configs[entry.xares_module]
        assert entry.name == xares["name"], entry.name
        assert list(entry.audio_tar_globs) == xares["globs"], entry.name
        assert list(entry.pretrained_dependencies) == xares["deps"], entry.name
        assert entry.overrides_xares_disabled == xares["disabled"], entry.name  # every disabled task is overridden
