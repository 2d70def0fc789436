"""Every state change of a submission goes through one writer, `StageRunner`, and reads back from
the journal as written: the stages' running/done/failed with their keys, the steps, and the ends
(done, excluded with its stage, error, superseded). A final state is never entered as a step."""

from __future__ import annotations

import pytest

from harness.errors import InfraError
from harness.pipelines.score import SubmissionExcluded
from harness.journal import Journal, StageState, SubmissionState
from harness.pipelines.runner import StageRunner
from harness.stage_names import Stage

SHA = "a" * 64


def test_stage_states_and_the_end_read_back_from_the_journal(tmp_path):
    journal = Journal(tmp_path)
    runner = StageRunner(journal, SHA)
    runner.enter(SubmissionState.CHECKING)
    runner.running(Stage.CHECK, key="k1", gpu=None)
    runner.ended(Stage.CHECK, True, key="k1", checks={"blocking": []})
    runner.running(Stage.ENCODE, task="tones", key="k2")
    runner.failed(Stage.ENCODE, task="tones", key="k2", reason="encode ran out of memory")
    runner.finished("partial")
    record = journal.state().submissions[SHA]
    assert record.state is SubmissionState.DONE and record.detail["status"] == "partial"
    check = record.stages[(Stage.CHECK.value, None)]
    assert (check.state, check.key, check.data["checks"]) == (StageState.DONE, "k1", {"blocking": []})
    encode = record.stages[(Stage.ENCODE.value, "tones")]
    assert encode.state is StageState.FAILED and encode.data["reason"] == "encode ran out of memory"
    journal.close()


def test_the_ends_carry_what_the_error_says(tmp_path):
    journal = Journal(tmp_path)
    excluded = SubmissionExcluded("fetch", "the encoder could not be constructed", expected="construction",
                                  found="ImportError", fix="run aecc validate", log_path=tmp_path / "fetch.log")
    StageRunner(journal, SHA).excluded(excluded.stage, excluded)
    record = journal.state().submissions[SHA]
    assert record.state is SubmissionState.EXCLUDED
    assert {k: record.detail[k] for k in ("stage", "reason", "found", "fix", "log")} == {
        "stage": "fetch", "reason": "the encoder could not be constructed", "found": "ImportError",
        "fix": "run aecc validate", "log": str(tmp_path / "fetch.log")}
    other = "b" * 64
    StageRunner(journal, other).errored(InfraError("the engine went away", found="ConnectionError"), attempt=2)
    assert journal.state().submissions[other].state is SubmissionState.ERROR
    assert journal.state().submissions[other].detail["attempt"] == 2
    journal.close()


def test_a_final_state_is_not_a_step_and_a_stage_is_an_enum(tmp_path):
    journal = Journal(tmp_path)
    runner = StageRunner(journal, SHA)
    for final in (SubmissionState.DONE, SubmissionState.EXCLUDED, SubmissionState.SUPERSEDED):
        with pytest.raises(ValueError, match="ends a submission"):
            runner.enter(final)
    with pytest.raises(ValueError):
        runner.running("compile")  # not a stage: refused before anything is written
    assert SHA not in journal.state().submissions
    journal.close()
