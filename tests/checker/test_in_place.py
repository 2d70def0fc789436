"""`python -m checker PATH` gives, in a plain Python with only torch installed (Colab, no Docker), the
verdict `aecc validate` gives: the same checks, a report valid against the same schema, the same exit
codes (0 passed, 1 the submission must be fixed, 2 usage or infrastructure), a JUnit file CI can
parse, and it says plainly, in its output and its report, that nothing was sandboxed. It imports
nothing of the host side (harness, docker, jsonschema, rich).

The in-place tests run in a fresh virtual environment made once per session under pytest's tmp
dir: `python3 -m venv`, `pip install torch==2.13.0` (the CPU wheel on this machine's disk), then
`pip install` of a snapshot of the repository's packaging inputs (pyproject.toml, README.md,
checker/, harness/; a snapshot so that the in-tree build never writes into the shared checkout).
Measured here: about 45 s for the venv, then 1-5 s per run (the module: about 80 s).
AECC_TEST_IN_PLACE_PYTHON names an interpreter that already has both installed, to skip the build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
HOST_MODULES = ("harness", "docker", "jsonschema", "rich")
#: import names of pyproject.toml's dependencies: `pip install --no-deps` (the Colab recipe) lacks them
PROJECT_DEPENDENCIES = ("docker", "jsonschema", "psutil", "pynvml", "rich", "cryptography", "packaging", "pypdf",
                        "yaml")


@pytest.fixture(scope="module")
def schema() -> dict:
    data = json.loads((REPO / "harness" / "schemas" / "validation-report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def run_in_place(python: str, tmp_path: Path, *args: str) -> tuple[int, dict, str, ET.Element | None]:
    """`python -m checker ARGS` from a folder outside the repository (the installed package runs)."""
    out, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([python, "-m", "checker", *args, "--json-out", str(out), "--junit-out", str(junit)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    report = json.loads(out.read_text()) if out.exists() else {}
    suite = ET.parse(junit).getroot() if junit.exists() else None
    return proc.returncode, report, proc.stdout + proc.stderr, suite


def by_id(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


def failed_ids(report: dict) -> set[str]:
    return {c["id"] for c in report["checks"] if c["status"] == "failed"}


CASES = [
    # (PATH[:Class], exit code, failed check ids)
    ("tests/fixtures/encoders/good", 0, set()),
    ("examples/good_encoder", 0, set()),
    ("tests/fixtures/encoders/template_fork_good", 0, set()),
    ("tests/fixtures/encoders/template_fork_broken", 1, {"output_dim_match"}),
    ("tests/fixtures/encoders/import_error", 1, {"import"}),
    ("tests/fixtures/encoders/wrong_dim", 1, {"output_dim_match"}),
    ("tests/fixtures/encoders/forward_raises", 1, {"forward_basic"}),
    ("tests/fixtures/encoders/bad_name", 1, {"discover"}),  # nothing ends in Encoder: discovery refuses
    ("tests/fixtures/encoders/bad_name/encoder.py:GoodModel", 1, {"class_name"}),  # named: the checker says why
    ("tests/fixtures/encoders/good/encoder.py", 0, set()),
    ("tests/fixtures/encoders/good:GoodEncoder", 0, set()),
    # One per level: scoring fails the run, advice does not (unless --strict).
    ("tests/fixtures/encoders/nan_output", 1, {"finite"}),
    ("tests/fixtures/encoders/nondeterministic", 0, {"deterministic"}),
]


@pytest.mark.parametrize(("target", "code", "failed"), CASES, ids=[c[0].split("encoders/")[-1] for c in CASES])
def test_verdicts_match_the_contract(in_place_python, schema, tmp_path, target, code, failed) -> None:
    rc, report, output, suite = run_in_place(in_place_python, tmp_path, str(REPO / target))
    assert rc == code, output
    jsonschema.validate(report, schema)
    assert report["status"] == ("passed" if code == 0 else "failed")
    assert failed_ids(report) == failed, output
    assert report["profile"] == "in-place"
    assert report["isolation"]["sandbox"] is False and report["isolation"]["network_cut"] is False
    assert "NO SANDBOX" in output and "NO NETWORK CUT" in output
    assert suite is not None and suite.get("name") == "aecc-in-place"
    counted = {i for i in failed if by_id(report)[i].get("level") != "advice"}  # what fails the run
    assert int(suite.get("tests")) == len(report["checks"]) and int(suite.get("failures")) == len(counted)
    assert {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None} == counted
    headline = report["verdict"]["headline"]
    assert f"\n{headline}\n" in output, "the verdict's first line, as every tool prints it"
    levels = {by_id(report)[i].get("level") for i in counted}
    assert headline.startswith("will be excluded" if "rule" in levels else
                               "will be scored, but" if levels else "passes ("), headline
    if "discover" not in failed:
        checks = by_id(report)
        assert checks["sandbox"]["status"] == "warning"
        assert checks["discover"]["status"] == "passed"
        assert report["checker"]["environment"]["cuda_available"] is False  # the CPU wheel
        assert checks["cuda"]["status"] == "skipped"


def test_strict_makes_advice_fail(in_place_python, tmp_path) -> None:
    rc, report, output, suite = run_in_place(in_place_python, tmp_path, str(FIXTURES / "nondeterministic"), "--strict")
    assert rc == 1 and report["status"] == "failed", output
    assert report["verdict"]["headline"].startswith("passes (") and report["verdict"]["strict"] is True
    assert "--strict: advisories fail this run (exit 1)" in output
    assert {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None} == {"deterministic"}


def test_a_hang_ends_the_run_with_its_report(in_place_python, tmp_path) -> None:
    """No container to kill in place: the watchdog finishes the report, prints the verdict and exits."""
    started = time.monotonic()
    rc, report, output, suite = run_in_place(in_place_python, tmp_path, str(FIXTURES / "spinning"))
    assert rc == 1 and time.monotonic() - started < 120, output
    assert by_id(report)["forward_timeout"]["status"] == "failed"
    assert report["verdict"]["headline"].startswith("will be scored, but: forward_lengths failed: forward did not "
                                                    "return: forward on 1 s")
    assert f"\n{report['verdict']['headline']}\n" in output and suite is not None


def test_fork_report_says_what_discovery_set_aside(in_place_python, tmp_path) -> None:
    rc, report, output, _ = run_in_place(in_place_python, tmp_path, str(FIXTURES / "template_fork_good"))
    assert rc == 0, output
    assert report["submission"] == {"source": str(FIXTURES / "template_fork_good"), "encoder_file": "my_encoder.py",
                                    "encoder_class": "MyEncoder", "encoder_source": "xares_rule"}
    assert "template.py (MyEncoder)" in by_id(report)["discover"]["message"]
    t4 = report["checker"]["t4"]
    assert t4["device"] == "cpu" and t4["is_t4_class"] is False and t4["projected_seconds"] > 0
    assert report["resources"]["measured_by"] == "in-process" and report["resources"]["peak_host_memory_bytes"] > 0
    assert "measured on the CPU: not a T4 projection" in output


def test_undecidable_fork_lists_candidates_and_the_two_ways(in_place_python, schema, tmp_path) -> None:
    root = tmp_path / "fork"
    shutil.copytree(FIXTURES / "template_fork_good", root)
    (root / "template.py").write_text((root / "template.py").read_text().replace("= 128", "= 64"))
    rc, report, output, _ = run_in_place(in_place_python, tmp_path, str(root))
    assert rc == 1, output
    jsonschema.validate(report, schema)
    [check] = report["checks"]
    assert check["id"] == "discover" and check["status"] == "failed"
    assert check["details"]["candidates"] == ["my_encoder.py:MyEncoder", "template.py:MyEncoder"]
    assert "aecc.json" in check["fix"] and "--encoder my_encoder.py:MyEncoder" in check["fix"]
    rc, report, output, _ = run_in_place(in_place_python, tmp_path, str(root), "--encoder", "my_encoder.py:MyEncoder")
    assert rc == 0, output
    assert report["submission"]["encoder_source"] == "override"


def test_a_file_x_ares_cannot_import_fails_at_import(in_place_python, tmp_path) -> None:
    dashed = tmp_path / "sub" / "my-encoder.py"
    dashed.parent.mkdir()
    shutil.copy(FIXTURES / "good" / "encoder.py", dashed)
    rc, report, output, _ = run_in_place(in_place_python, tmp_path, str(dashed))
    assert rc == 1, output
    assert failed_ids(report) == {"import"} and "rename the file" in by_id(report)["import"]["fix"]


@pytest.mark.parametrize(("args", "check_id"), [
    (("does/not/exist",), "usage"),
    ((str(FIXTURES / "good"), "--device", "cuda"), "usage"),  # the CPU wheel sees no GPU
    ((str(FIXTURES / "good"), "--encoder", "encoder.py"), "usage"),
    ((str(FIXTURES / "good" / "encoder.py"), "--encoder", "encoder.py:GoodEncoder"), "usage"),
])
def test_usage_problems_are_errors_never_failures(in_place_python, schema, tmp_path, args, check_id) -> None:
    rc, report, output, suite = run_in_place(in_place_python, tmp_path, *args)
    assert rc == 2, output
    jsonschema.validate(report, schema)
    assert report["status"] == "error" and by_id(report)[check_id]["status"] == "failed"
    assert suite is not None and suite.find("system-err") is not None


def test_the_host_side_is_never_imported(in_place_python, tmp_path) -> None:
    code = (
        "import json, sys\n"
        "import checker.__main__ as m\n"
        "after_import = sorted(sys.modules)\n"
        f"rc = m.main([{str(FIXTURES / 'template_fork_good')!r}])\n"
        "print(json.dumps({'rc': rc, 'import': after_import, 'run': sorted(sys.modules), 'file': m.__file__}))\n"
    )
    proc = subprocess.run([in_place_python, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["rc"] == 0
    assert "site-packages" in seen["file"], seen["file"]  # the installed package, not the checkout
    for phase in ("import", "run"):
        leaked = [m for m in seen[phase] if m.split(".")[0] in HOST_MODULES]
        assert not leaked, (phase, leaked)
    assert "torch" not in seen["import"] and "torch" in seen["run"]  # torch only once a run needs it


def test_it_runs_without_the_projects_dependencies(in_place_python, tmp_path) -> None:
    """As after `pip install --no-deps` (the Colab recipe): every dependency of pyproject.toml and
    the harness itself made unimportable, a full run still passes."""
    code = (
        "import sys\n"
        f"BLOCKED = {set(PROJECT_DEPENDENCIES) | {'harness'}!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(f'blocked: {name}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import checker.__main__ as m\n"
        f"sys.exit(m.main([{str(FIXTURES / 'template_fork_good')!r}]))\n"
    )
    proc = subprocess.run([in_place_python, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\npasses (1 advisory)\n" in proc.stdout  # the sandbox warning: nothing was contained


# ------------------------------------------------------------------ in the test process (no torch)


def test_constants_agree_with_the_profile_and_the_schema() -> None:
    from checker import __main__ as in_place
    from harness import schemas
    from harness.sandbox.profiles import load_profile

    t4 = load_profile("t4")
    assert in_place.T4_HOST_MEMORY_BYTES == t4.memory_bytes
    assert in_place.T4_GPU_MEMORY_BYTES == t4.gpu.memory_bytes
    assert in_place.REPORT_SCHEMA_VERSION == schemas.SCHEMA_VERSION


def test_one_junit_writer() -> None:
    from checker.junit import junit_xml
    from harness.report import junit

    assert junit.junit_xml is junit_xml


def test_aecc_validate_reports_stay_valid_and_isolation_is_checked(schema) -> None:
    from harness.results import Check, CheckStatus, ValidationReport, Verdict

    sandboxed = ValidationReport(Verdict.PASSED, {"source": "x"}, "cpu",
                                 (Check("intake", CheckStatus.PASSED, "ok"),)).to_dict()  # validates itself
    assert "isolation" not in sandboxed
    jsonschema.validate({**sandboxed, "isolation": {"sandbox": False, "network_cut": False}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**sandboxed, "isolation": {"note": "no sandbox flag"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**sandboxed, "resources": {"measured_by": "guess"}}, schema)


def test_t4_summary_recognises_a_t4() -> None:
    from checker.__main__ import T4_GPU_MEMORY_BYTES, t4_summary

    data = {"environment": {"gpus": [{"name": "Tesla T4", "capability": "7.5"}]},
            "throughput": {"device": "cuda", "projected_seconds": 1800.0, "reference_hours": 100.0,
                           "audio_seconds_per_second": 200.0},
            "resources": {"peak_cuda_bytes": T4_GPU_MEMORY_BYTES // 2, "peak_rss_bytes": 2**30}}
    t4 = t4_summary(data)
    assert t4["is_t4_class"] and t4["device"] == "Tesla T4" and t4["gpu_peak_fraction"] == 0.5
    data["environment"]["gpus"][0].update(name="NVIDIA H200", capability="9.0")
    assert not t4_summary(data)["is_t4_class"]
    data["throughput"]["device"], data["resources"]["peak_cuda_bytes"] = "cpu", None  # --device cpu on a GPU box
    assert t4_summary(data)["device"] == "cpu"


def test_error_lines_never_collide_with_check_ids() -> None:
    """`status` reads a failed `usage`/`infrastructure`/`check` line as the run's error, so no checker
    check may carry one of those ids."""
    from checker.__main__ import ERROR_CHECK_IDS
    from checker.common import CHECK_IDS

    assert not set(ERROR_CHECK_IDS) & set(CHECK_IDS)
