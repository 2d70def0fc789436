"""Each contract violation is reported under its stable id; a good encoder passes.

Every fixture in tests/fixtures/encoders/ is one submission: `good` honours the whole contract,
every other one breaks exactly one clause. The checker runs as in production: in the runtime
image, under the cpu sandbox profile (network off, read-only root, uid 10001), the fixture mounted
read-only at /submission and only /out writable. The host reads the report as untrusted data
(no symlinks, size cap, JSON schema) and asserts that exactly the targeted id failed.

The working copy of `checker/` is mounted over the image's /opt/aecc/checker, so these tests
check the code in this checkout, not the copy baked into the image.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
SCHEMA = REPO / "harness" / "schemas" / "check-report.schema.json"
REPORT_CAP = 1024**2

#: fixture folder -> (encoder class, the check ids that must fail, the verdict's outcome)
CASES: dict[str, tuple[str, set[str], str]] = {
    "good": ("GoodEncoder", set(), "passes"),
    "import_error": ("ImportErrorEncoder", {"import"}, "excluded"),
    "bad_name": ("GoodModel", {"class_name"}, "excluded"),
    "ctor_raises": ("CtorRaisesEncoder", {"constructible"}, "excluded"),
    "not_module": ("NotModuleEncoder", {"nn_module"}, "excluded"),
    "missing_attrs": ("MissingAttrsEncoder", {"attr_hop_size"}, "excluded"),
    "forward_raises": ("ForwardRaisesEncoder", {"forward_basic"}, "excluded"),
    "int_output": ("IntOutputEncoder", {"output_dtype"}, "scored_with_problems"),
    "wrong_rank": ("WrongRankEncoder", {"output_rank"}, "excluded"),
    "wrong_dim": ("WrongDimEncoder", {"output_dim_match"}, "excluded"),
    "zero_frames": ("ZeroFramesEncoder", {"output_frames_positive"}, "scored_with_problems"),
    "wrong_hop": ("WrongHopEncoder", {"frames_track_hop"}, "passes"),
    "nan_output": ("NanOutputEncoder", {"finite"}, "scored_with_problems"),
    "nondeterministic": ("NondeterministicEncoder", {"deterministic"}, "passes"),
    "batch_dependent": ("BatchDependentEncoder", {"batch_independence"}, "passes"),
    "bf16_static": ("Bf16StaticEncoder", set(), "passes"),
    # The official template's bug class: no frames under 40 s, noise after that.
    "random_sparse": ("RandomSparseEncoder", {"output_frames_positive", "frames_track_hop", "deterministic"},
                      "scored_with_problems"),
    # Slow but steady: never cut (the hangs, `spinning` and `hang_at_once`, have their own test below).
    "steady_slow": ("SteadySlowEncoder", set(), "passes"),
    "two_encoders": ("FirstEncoder", set(), "passes"),
}


@pytest.fixture(scope="module")
def schema() -> dict:
    data = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def read_report(path: Path) -> dict:
    """Read a container-written report as untrusted: a regular file, not a link, size-capped."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        assert stat.S_ISREG(info.st_mode), f"{path} is not a regular file"
        assert info.st_size <= REPORT_CAP, f"{path} is {info.st_size} bytes, over the {REPORT_CAP} cap"
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(REPORT_CAP + 1)
    finally:
        os.close(fd)
    return json.loads(data)


def run_checker(client, image: str, tmp_path: Path, fixture: str, encoder: str, *extra: str) -> tuple[object, dict | None]:
    from harness.sandbox.profiles import load_profile
    from harness.stage_names import Stage
    from harness.sandbox.run import run_stage
    from harness.sandbox.spec import Mount, RunSpec

    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the sandbox user (10001) writes the report
    spec = RunSpec(
        stage=Stage.CHECK,
        image=image,
        command=(
            # -P: never put the working directory on sys.path, so a submission's own `checker/`
            # cannot stand in for the agent when a stage runs with its workdir in the submission.
            "python", "-P", "-m", "checker.contract",
            "--submission", "/submission",
            "--encoder", encoder,
            "--report", "/out/report.json",
            *extra,
        ),
        mounts=(
            Mount(FIXTURES / fixture, "/submission"),
            Mount(out, "/out", read_only=False),
            Mount(REPO / "checker", "/opt/aecc/checker"),
        ),
        wall_clock_s=300,
    )
    result = run_stage(client, load_profile("cpu"), spec, tmp_path / "check.log")
    report_path = out / "report.json"
    return result, (read_report(report_path) if report_path.exists() else None)


def by_id(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_fixture_fails_exactly_its_check(client, runtime_image, schema, tmp_path, fixture):
    cls, must_fail, outcome = CASES[fixture]
    result, report = run_checker(client, runtime_image, tmp_path, fixture, f"encoder.py:{cls}")
    log = result.log_tail()
    assert result.outcome.value == "ok", f"{result.outcome}: {result.detail}\n{log}"
    assert report is not None, f"no report written\n{log}"
    jsonschema.validate(report, schema)
    assert report["complete"] and report["in_progress"] is None
    assert report["error"] is None, report["error"]
    checks = by_id(report)
    from checker.contract import CHECK_IDS

    assert list(checks) == list(CHECK_IDS), "every id, once, in the documented order"
    failed = {i for i, c in checks.items() if c["status"] == "failed"}
    assert failed == must_fail, {i: checks[i]["message"] for i in failed ^ must_fail}
    # Levels, not the count of failures, decide: advice alone never fails a report.
    assert report["verdict"]["outcome"] == outcome, report["verdict"]["headline"]
    assert report["status"] == ("passed" if outcome == "passes" else "failed")
    for check_id in must_fail:
        check = checks[check_id]
        assert check["message"] and check["expected"] and check["found"], check


def test_a_hang_is_stopped_in_seconds_and_names_its_call(client, runtime_image, schema, tmp_path):
    """An encoder that never returns fails forward_timeout within 2 minutes of its first call (the
    warm-up's fixed budget), and the container is gone: the stage ends on its own, far inside its
    wall clock. One that hangs later is stopped at the budget its own measured speed gives."""
    from checker.watchdog import BUDGET_FLOOR_S, WARMUP_BUDGET_S

    result, report = run_checker(client, runtime_image, tmp_path, "hang_at_once", "encoder.py:HangAtOnceEncoder")
    assert result.outcome.value == "ok" and result.duration_s < 120, (result.outcome, result.duration_s)
    timeout = by_id(report)["forward_timeout"]
    assert timeout["details"]["call"] == "warm-up forward" and timeout["details"]["budget_s"] == WARMUP_BUDGET_S
    assert WARMUP_BUDGET_S <= timeout["details"]["elapsed_s"] < 120
    assert report["verdict"]["headline"].startswith("will be excluded: forward_basic failed: forward did not return")
    assert not client.containers.list(all=True, filters={"label": "org.aecc.stage=check"}), "the container is gone"

    later = tmp_path / "later"
    later.mkdir()
    result, report = run_checker(client, runtime_image, later, "spinning", "encoder.py:SpinningEncoder")
    timeout = by_id(report)["forward_timeout"]
    assert timeout["details"]["call"] == "forward on 1 s" and timeout["details"]["predicted_s"] is not None
    assert timeout["details"]["budget_s"] < BUDGET_FLOOR_S + 30 and result.duration_s < 120, timeout["details"]
    assert by_id(report)["forward_lengths"]["status"] == "failed"
    assert by_id(report)["forward_basic"]["status"] == "passed", "the rule checks ran before the hang"
    assert report["verdict"]["headline"].startswith("will be scored, but: forward_lengths failed")


def test_good_encoder_passes_everything_it_can(client, runtime_image, schema, tmp_path):
    result, report = run_checker(client, runtime_image, tmp_path, "good", "encoder.py:GoodEncoder")
    assert report is not None, result.log_tail()
    checks = by_id(report)
    not_passed = {i: c["status"] for i, c in checks.items() if c["status"] != "passed"}
    # No GPU on this machine: `cuda` is skipped with its reason, nothing else may be short of passed.
    assert set(not_passed) <= {"cuda"}, {i: checks[i]["message"] for i in not_passed}
    if "cuda" in not_passed:
        assert not_passed["cuda"] == "skipped" and "CUDA" in checks["cuda"]["message"]
    rows = checks["frames_track_hop"]["details"]["lengths"]
    assert {r["seconds"]: r["frames"] for r in rows} == {
        0.5: 25, 1.0: 50, 3.0: 150, 10.0: 500, 60.0: 3000, 600.0: 30000
    }, "floor(T / 320) at every length, the 10-minute input included"
    assert report["throughput"]["audio_seconds_per_second"] > 0
    assert report["resources"]["peak_rss_bytes"] > 0
    assert report["environment"]["threads"] <= 2, "threads follow the container's CPU quota"


def test_forward_raising_is_the_submissions_failure_not_an_error(client, runtime_image, schema, tmp_path):
    result, report = run_checker(client, runtime_image, tmp_path, "forward_raises", "encoder.py:ForwardRaisesEncoder")
    assert result.outcome.value == "ok" and result.exit_code == 0
    assert report is not None
    jsonschema.validate(report, schema)
    assert report["status"] == "failed"
    assert report["error"] is None
    forward = by_id(report)["forward_basic"]
    assert forward["status"] == "failed"
    assert "ValueError" in forward["found"]
    assert "expected audio of shape" in forward["details"]["traceback"]
    skipped = by_id(report)["output_rank"]
    assert skipped["status"] == "skipped" and "forward_basic" in skipped["message"]


def test_long_input_is_skipped_with_its_reason_over_budget(client, runtime_image, schema, tmp_path):
    """`slow` sleeps 10 ms per audio second: 60 s takes 0.6 s, so 600 s is estimated past 4 s."""
    _, report = run_checker(client, runtime_image, tmp_path, "slow", "encoder.py:SlowEncoder", "--max-seconds", "4")
    jsonschema.validate(report, schema)
    checks = by_id(report)
    assert checks["long_input"]["status"] == "skipped"
    assert "--max-seconds" in checks["long_input"]["message"]
    assert checks["forward_lengths"]["status"] == "passed"
    assert report["status"] == "passed"


def test_bf16_mention_is_a_t4_warning(client, runtime_image, schema, tmp_path):
    _, report = run_checker(client, runtime_image, tmp_path, "bf16_static", "encoder.py:Bf16StaticEncoder")
    pitfalls = by_id(report)["t4_pitfalls"]
    assert pitfalls["status"] == "warning"
    assert {f["pitfall"] for f in pitfalls["details"]["findings"]} == {"bfloat16"}
    assert "sm_75" in pitfalls["message"]


def test_missing_class_names_the_candidates(client, runtime_image, schema, tmp_path):
    _, report = run_checker(client, runtime_image, tmp_path, "good", "encoder.py:MissingEncoder")
    jsonschema.validate(report, schema)
    checks = by_id(report)
    assert checks["class_found"]["status"] == "failed"
    assert checks["class_found"]["details"]["candidates"] == ["GoodEncoder"]
    assert checks["constructible"]["status"] == "skipped"


def test_fetch_phase_constructs_and_reads_the_attributes(client, runtime_image, schema, tmp_path):
    """The fetch phase (what `aecc validate` and `aecc score` both run) stops before any forward and
    reports the attributes the trusted stages need, each checked against ATTRIBUTE_RANGES."""
    _, report = run_checker(client, runtime_image, tmp_path, "good", "encoder.py:GoodEncoder", "--phase", "fetch")
    jsonschema.validate(report, schema)
    assert report["phase"] == "fetch" and report["status"] == "passed"
    from checker.common import FETCH_CHECK_IDS

    assert [c["id"] for c in report["checks"]] == list(FETCH_CHECK_IDS)
    assert report["attributes"] == {"class_name": "GoodEncoder", "sampling_rate": 16000, "output_dim": 64,
                                    "hop_size_in_ms": 20.0}


def test_an_import_error_shows_type_and_message_and_logs_the_whole_traceback(client, runtime_image, tmp_path):
    """Issue 9: the report says which exception and why; the stage log holds the full traceback."""
    result, report = run_checker(client, runtime_image, tmp_path, "import_error", "encoder.py:ImportErrorEncoder",
                                 "--phase", "fetch")
    check = by_id(report)["import"]
    assert check["status"] == "failed"
    expected = "ModuleNotFoundError: No module named 'aecc_package_that_does_not_exist'"
    assert expected in check["message"] and expected in check["found"]
    log = result.log_path.read_text()
    assert "Traceback (most recent call last)" in log and "/submission/encoder.py" in log and expected in log


def test_checker_usage_error_is_an_error_report(client, runtime_image, schema, tmp_path):
    """A malformed --encoder is the host's bug: status `error`, never the submission's failure."""
    result, report = run_checker(client, runtime_image, tmp_path, "good", "not-a-spec")
    assert result.exit_code == 0
    jsonschema.validate(report, schema)
    assert report["status"] == "error" and "FILE.py:ClassName" in report["error"]


def test_schema_lists_exactly_the_documented_ids(schema):
    # checker.contract imports only the standard library at module level, so the host may read it.
    from checker import contract

    assert schema["$defs"]["check_id"]["enum"] == list(contract.CHECK_IDS)
    for check_id in contract.CHECK_IDS:
        assert f"    {check_id} " in contract.__doc__, f"{check_id} is not documented in the module docstring"
    assert set(contract.DEPENDS) == set(contract.CHECK_IDS)
