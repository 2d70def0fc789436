"""With the Docker engine: the record ids are read from the runtime image's own X-ARES task modules;
scoring fetched data gives the same numbers as scoring the data written directly; and `aecc data
prepare` fills the cache the score pipeline reads, so a later score prepares nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.data.download import RetryPolicy
from harness.data.fetch import DataFetchSpec, Outcome, fetch
from harness.data.records import Availability, plan_tasks, xares_tasks_from_image
from harness.tasks.registry import load_registry

REPO = Path(__file__).resolve().parents[3]
GOOD = REPO / "examples" / "good_encoder"
DEMO = REPO / "demo_tasks"
FAST = RetryPolicy(attempts=3, base_s=0.05, max_s=0.1)


@pytest.fixture(scope="module")
def runtime(client) -> str:
    from harness.layers.build import build_chain
    from harness.layers.model import runtime_layer

    return build_chain(client, runtime_layer(), log=lambda m: None)[-1].image


def test_record_ids_come_from_the_runtime_images_task_modules(client, runtime):
    folder = xares_tasks_from_image(client, runtime)
    assert folder.is_dir() and len(list(folder.glob("*_task.py"))) >= 20
    assert xares_tasks_from_image(client, runtime) == folder  # copied once per image
    planned = {t.name: t for t in plan_tasks(task_set="icme2025-final", xares_tasks=folder)}
    registry = load_registry()
    for entry in registry:
        if not entry.task_sets.get("icme2025-final"):
            continue
        task = planned[entry.name]
        if entry.hidden:
            assert task.availability is Availability.PLACE_YOURSELF, entry.name
        else:
            assert task.availability is Availability.ZENODO and task.zenodo_id.isdigit(), entry.name
    # what X-ARES 0.1.3's esc50_task.py says (and its tools/download_manually.sh downloads)
    assert planned["esc50"].zenodo_id == "14614287"
    # two tasks read one record: the fetch downloads it once (test_fetch.py::test_two_tasks_sharing_a_record...)
    assert planned["librispeech"].zenodo_id == planned["librispeechmalefemale"].zenodo_id


def _score(env: Path, out: Path, task: str) -> dict:
    from harness.bulk.run import score_path
    from harness.pipelines.score import ScoreSettings
    from harness.sandbox import engine
    from harness.tasks.arguments import resolve_tasks

    settings = ScoreSettings(data=env, tasks=resolve_tasks([str(DEMO / f"{task}_task.py")]), repeats=1)
    result = score_path(engine.connect(), GOOD, settings=settings, out=out, profile="cpu").to_dict()
    return {t["task"]: t for t in result["tasks"]}[task]


@pytest.mark.slow
def test_scoring_fetched_data_gives_the_same_numbers(client, tmp_path, zenodo, tasks, generated):
    env = tmp_path / "fetched"
    report = fetch(DataFetchSpec(out=env, tasks=[t for t in tasks if t.name == "tiny_tones"], api=zenodo.api,
                             retry=FAST, timeout_s=10))
    assert [r.outcome for r in report.results] == [Outcome.FETCHED]
    os.system(f"chmod -R a+rX {generated}")  # the sandbox user (uid 10001) reads it
    direct = _score(generated, tmp_path / "out-direct", "tiny_tones")
    fetched = _score(env, tmp_path / "out-fetched", "tiny_tones")
    assert direct["outcome"] == fetched["outcome"] == "scored"
    assert fetched["track_a"] == direct["track_a"] and fetched["track_b"] == direct["track_b"]
    assert fetched["counts"] == direct["counts"]


@pytest.mark.slow
def test_data_prepare_fills_the_cache_score_reads(client, tmp_path, zenodo, tasks, capsys):
    from harness.cli import main
    from harness.stages import prepare as prepare_stage

    env = tmp_path / "fetched"
    assert fetch(DataFetchSpec(out=env, tasks=[t for t in tasks if t.name == "tiny_esc"], api=zenodo.api,
                           retry=FAST, timeout_s=10)).ok
    root = prepare_stage.cache_root()
    before = {p.name for p in root.iterdir()}
    # the example encoder's attributes: 16 kHz, hop 10 ms, 128 dimensions
    code = main(["data", "prepare", str(env), "--tasks", str(DEMO / "tiny_esc_task.py"), "--sample-rate", "16000",
                 "--hop-ms", "10", "--output-dim", "128", "--json"])
    assert code == 0, capsys.readouterr().err
    prepared = {p.name for p in root.iterdir()} - before
    assert [n for n in prepared if not n.endswith(".lock")], "data prepare prepared nothing"
    # a second run finds its own work in the cache
    assert main(["data", "prepare", str(env), "--tasks", str(DEMO / "tiny_esc_task.py"), "--sample-rate", "16000",
                 "--hop-ms", "10", "--output-dim", "128"]) == 0
    assert "cached" in capsys.readouterr().err
    after_prepare = {p.name for p in root.iterdir()}
    result = _score(env, tmp_path / "out", "tiny_esc")
    assert result["outcome"] == "scored"
    assert {p.name for p in root.iterdir()} == after_prepare  # the score's prepare stage was a cache hit
