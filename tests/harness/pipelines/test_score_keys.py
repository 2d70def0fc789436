"""Resume-key invariant of the score pipeline (harness/pipelines/score.py): a score is reused only
under the same model store for the tasks that load models (ASR's LM, Clotho's tokenizer); another
store, or a changed file in it, is a new key, and tasks that load no model keep theirs. The store's
manifest digest is what the result names."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InfraError
from harness.pipelines.score import ScoreSettings, models_part, models_digest
from harness.tasks.arguments import resolve_tasks
from tests.support.models import lay_out_data, write_store


def test_the_store_is_part_of_the_key_of_the_tasks_that_load_models(tmp_path: Path) -> None:
    data = lay_out_data(tmp_path / "env", ["esc50", "librispeech", "clotho"])
    tasks = {t.label: t for t in resolve_tasks(["esc50", "librispeech", "clotho"])}
    first = write_store(tmp_path / "a")
    second = write_store(tmp_path / "b", ("qwen2",))
    with_a = ScoreSettings(data=data, tasks=tuple(tasks.values()), models=tmp_path / "a")
    with_b = ScoreSettings(data=data, tasks=tuple(tasks.values()), models=tmp_path / "b")
    without = ScoreSettings(data=data, tasks=tuple(tasks.values()))

    assert models_digest(with_a) == first.digest and models_digest(with_b) == second.digest
    assert first.digest != second.digest and models_digest(without) is None
    for label in ("librispeech", "clotho"):
        assert models_part(with_a, tasks[label]) == {"models": first.digest}
        assert models_part(with_b, tasks[label]) == {"models": second.digest}
        assert models_part(without, tasks[label]) == {"models": None}
    for settings in (with_a, with_b, without):
        assert models_part(settings, tasks["esc50"]) == {}  # its key is what it was before stores existed


def test_a_changed_store_file_is_refused_not_keyed(tmp_path: Path) -> None:
    data = lay_out_data(tmp_path / "env", ["librispeech"])
    write_store(tmp_path / "a", ("qwen2",))
    (tmp_path / "a" / "Qwen" / "Qwen2.5-0.5B" / "model.safetensors").write_bytes(b"\x01" * 4096)
    settings = ScoreSettings(data=data, tasks=resolve_tasks(["librispeech"]), models=tmp_path / "a")
    with pytest.raises(InfraError, match="model.safetensors"):
        models_digest(settings)
