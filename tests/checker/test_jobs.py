"""The host and the agent share one vocabulary (`checker.jobs`): jobs round-trip through their files
unchanged, a missing field fails loudly, answers parse back into their kinds, and a plausible encoder
is defined once, so the checker, the fetch stage and the trusted stages accept the same attributes."""

from __future__ import annotations

import ast
import json

import pytest

from checker import jobs


def test_jobs_round_trip_through_their_file(tmp_path):
    written = [jobs.ScoreJob("tasks.esc50_task", "esc50_config", "/prepared/x", "/runs/y", "/work/0",
                             jobs.ScoreRequest(seed=7, repeats=3, mode=jobs.Mode.XARES), "/work/0/s.json")]
    jobs.write_jobs(tmp_path / "jobs.json", written)
    assert jobs.read_jobs(tmp_path / "jobs.json", jobs.ScoreJob) == written


def test_a_score_request_missing_a_setting_fails_loudly(tmp_path):
    """The agent has no defaults of its own: repeats, seed and mode come from the host or not at all."""
    row = jobs.job_rows([jobs.ScoreJob("t", None, "/p", "/e", "/w", jobs.ScoreRequest(7, 3, "unique"), "/o")])[0]
    assert row["request"] == {"seed": 7, "repeats": 3, "mode": "unique"}
    del row["request"]["repeats"]
    (tmp_path / "jobs.json").write_text(json.dumps([row]))
    with pytest.raises(TypeError):
        jobs.read_jobs(tmp_path / "jobs.json", jobs.ScoreJob)
    with pytest.raises(ValueError):
        jobs.ScoreRequest(seed=7, repeats=0, mode="unique")


def test_one_seed_derivation():
    """The derivation both sides use, pinned (values of the two copies it replaced): a change here would
    change every recorded seed."""
    assert jobs.derive_seed(0, "task", "esc50") == 665837763
    assert jobs.derive_seed(12345, "track-a", 2) == 3700482175
    assert jobs.derive_seed(jobs.derive_seed(0, "task", "tiny_tones"), "track-a", 0) == 2984115831


def test_a_job_missing_a_field_fails_loudly(tmp_path):
    (tmp_path / "jobs.json").write_text(json.dumps([{"task": "t", "out": "/o"}]))
    with pytest.raises(TypeError):
        jobs.read_jobs(tmp_path / "jobs.json", jobs.PrepareJob)


def test_answers_parse_into_their_kinds():
    failure = jobs.ScoreFailure(jobs.ScoreFailureKind.EMBEDDINGS, "batch 3: wrong shape")
    assert jobs.ScoreFailure.from_dict(json.loads(failure.to_json())) == failure
    assert jobs.ScoreFailure.from_dict({"task": "x", "track_a": {}}) is None
    assert jobs.read_gate_message(jobs.gate_message(jobs.Go(("--a", "1")))) == jobs.Go(("--a", "1"))
    assert jobs.read_gate_message(jobs.gate_message(jobs.Cancel())) == jobs.Cancel()


@pytest.mark.parametrize("attrs, problem", [
    ({"sampling_rate": 16000, "output_dim": 768, "hop_size_in_ms": 20, "class_name": "XEncoder"}, None),
    ({"sampling_rate": 4000, "output_dim": 768, "hop_size_in_ms": 20, "class_name": "XEncoder"}, "sampling_rate"),
    ({"sampling_rate": 384000, "output_dim": 768, "hop_size_in_ms": 20, "class_name": "XEncoder"}, "sampling_rate"),
    ({"sampling_rate": 16000, "output_dim": 0, "hop_size_in_ms": 20, "class_name": "XEncoder"}, "output_dim"),
    ({"sampling_rate": 16000, "output_dim": 768, "hop_size_in_ms": 5000, "class_name": "XEncoder"}, "hop_size_in_ms"),
    ({"sampling_rate": 16000, "output_dim": 768, "hop_size_in_ms": float("nan"), "class_name": "XEncoder"},
     "hop_size_in_ms"),
    ({"sampling_rate": 16000.5, "output_dim": 768, "hop_size_in_ms": 20, "class_name": "XEncoder"}, "whole number"),
    ({"sampling_rate": True, "output_dim": 768, "hop_size_in_ms": 20, "class_name": "XEncoder"}, "sampling_rate"),
    ({"output_dim": 768, "hop_size_in_ms": 20, "class_name": "XEncoder"}, "sampling_rate is missing"),
    ({"sampling_rate": 16000, "output_dim": 768, "hop_size_in_ms": 20, "class_name": "no such"}, "class_name"),
])
def test_one_definition_of_a_plausible_encoder(attrs, problem):
    found = jobs.attribute_problems(attrs)
    if problem is None:
        assert found == []
        assert jobs.EncoderAttributes.from_dict(attrs).to_args() == ["--sampling-rate", "16000", "--hop-ms", "20.0",
                                                                     "--output-dim", "768"]
    else:
        assert found and problem in " ".join(found), found
        with pytest.raises(ValueError):
            jobs.EncoderAttributes.from_dict(attrs)


def test_the_checker_uses_the_shared_ranges():
    """No range literal of its own in the checker's attribute checks: they read ATTRIBUTE_RANGES."""
    from tests.support import REPO

    source = (REPO / "checker" / "contract.py").read_text()
    tree = ast.parse(source)
    [method] = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "check_attributes"]
    numbers = {n.value for n in ast.walk(method) if isinstance(n, ast.Constant) and isinstance(n.value, (int, float))
               and not isinstance(n.value, bool)}
    assert not numbers & {8000, 48000, 1000}, numbers
    assert "ATTRIBUTE_RANGES" in ast.get_source_segment(source, method)


def test_the_agent_side_imports_only_the_standard_library():
    from tests.support import REPO

    tree = ast.parse((REPO / "checker" / "jobs.py").read_text())
    import sys

    mods = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
            for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert mods - {"__future__"} <= set(sys.stdlib_module_names), mods
