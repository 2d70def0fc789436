"""Our `rule` verdict passes exactly where X-ARES's own checker passes.

The rules say "the encoder must pass `audio_encoder_checker.py`": X-ARES 0.1.3's
`xares.audio_encoder_checker.check_audio_encoder`. The checks of level `rule`
(`checker.jobs.CHECK_LEVELS`) claim to be exactly what it enforces. This test runs both, in the
runtime image (where X-ARES is installed), network off, on every encoder of every fixture in
tests/fixtures/encoders/: X-ARES's function on a constructed instance (an import or constructor that
raises, or a call that never returns, is not a pass), and our contract checker, whose report the host
reads into the one verdict (`checker.verdict`). An encoder passes our rule level when the verdict is
not "will be excluded".

If X-ARES changes its checker, the pinned digest below says so first: review the levels, then the pin.
"""

from __future__ import annotations

import hashlib
import json

from tests.checker.test_contract import FIXTURES, REPO, read_report

#: sha256 of xares/audio_encoder_checker.py in X-ARES 0.1.3 (byte-equal to the template's copy)
XARES_CHECKER_SHA256 = hashlib.sha256(
    (FIXTURES / "template_fork_good" / "audio_encoder_checker.py").read_bytes()).hexdigest()

#: every encoder class of every fixture (the forks: the participant's file and the unchanged template)
ENCODERS: tuple[tuple[str, str], ...] = (
    ("bad_name", "encoder.py:GoodModel"),
    ("batch_dependent", "encoder.py:BatchDependentEncoder"),
    ("bf16_static", "encoder.py:Bf16StaticEncoder"),
    ("ctor_raises", "encoder.py:CtorRaisesEncoder"),
    ("forward_raises", "encoder.py:ForwardRaisesEncoder"),
    ("gate_fork_broken", "my_encoder.py:TinyConvEncoder"),
    ("gate_fork_good", "my_encoder.py:TinyConvEncoder"),
    ("gate_fork_good", "template.py:MyEncoder"),
    ("good", "encoder.py:GoodEncoder"),
    ("hang_at_once", "encoder.py:HangAtOnceEncoder"),
    ("import_error", "encoder.py:ImportErrorEncoder"),
    ("int_output", "encoder.py:IntOutputEncoder"),
    ("missing_attrs", "encoder.py:MissingAttrsEncoder"),
    ("nan_output", "encoder.py:NanOutputEncoder"),
    ("nondeterministic", "encoder.py:NondeterministicEncoder"),
    ("not_module", "encoder.py:NotModuleEncoder"),
    ("random_sparse", "encoder.py:RandomSparseEncoder"),
    ("slow", "encoder.py:SlowEncoder"),
    ("spinning", "encoder.py:SpinningEncoder"),
    ("steady_slow", "encoder.py:SteadySlowEncoder"),
    ("template_fork_broken", "my_encoder.py:MyEncoder"),
    ("template_fork_good", "my_encoder.py:MyEncoder"),
    ("template_fork_good", "template.py:MyEncoder"),
    ("train_mode_bn", "encoder.py:TrainModeBnEncoder"),
    ("two_encoders", "encoder.py:FirstEncoder"),
    ("two_encoders", "encoder.py:SecondEncoder"),
    ("wrong_dim", "encoder.py:WrongDimEncoder"),
    ("wrong_hop", "encoder.py:WrongHopEncoder"),
    ("wrong_rank", "encoder.py:WrongRankEncoder"),
    ("zero_frames", "encoder.py:ZeroFramesEncoder"),
)

#: runs inside the container: both checkers on every encoder, three at a time (the hangs only wait)
SCRIPT = r'''
import concurrent.futures, hashlib, json, os, subprocess, sys

import xares.audio_encoder_checker as official

XARES = r"""
import importlib, os, sys
from xares.audio_encoder_checker import check_audio_encoder
root, module, name = sys.argv[1:4]
sys.path.insert(0, root)
os.chdir(root)
try:
    ok = bool(check_audio_encoder(getattr(importlib.import_module(module), name)()))
except BaseException as exc:
    print(f"raised {type(exc).__name__}: {exc}")
    ok = False
print("XARES_VERDICT", ok)
"""

def xares(fixture, spec):
    file, name = spec.split(":")
    try:
        proc = subprocess.run([sys.executable, "-P", "-c", XARES, f"/fixtures/{fixture}", file[:-3], name],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"passed": False, "why": "did not return within 120 s"}
    lines = proc.stdout.strip().splitlines()
    return {"passed": bool(lines) and lines[-1] == "XARES_VERDICT True", "why": proc.stdout[-500:] + proc.stderr[-500:]}

def ours(fixture, spec):
    report = f"/out/{fixture}-{spec.replace(':', '-')}.json"
    subprocess.run([sys.executable, "-P", "-m", "checker.contract", "--submission", f"/fixtures/{fixture}",
                    "--encoder", spec, "--report", report, "--max-seconds", "20"],
                   capture_output=True, text=True, timeout=400)
    return os.path.basename(report)

cases = json.load(open("/job/cases.json"))
with concurrent.futures.ThreadPoolExecutor(3) as pool:
    futures = [(f, s, pool.submit(xares, f, s), pool.submit(ours, f, s)) for f, s in cases]
    rows = [{"fixture": f, "encoder": s, "xares": a.result(), "report": b.result()} for f, s, a, b in futures]
source = official.__file__
json.dump({"rows": rows, "checker_sha256": hashlib.sha256(open(source, "rb").read()).hexdigest()},
          open("/out/parity.json", "w"))
'''


def test_rule_level_passes_exactly_where_xares_checker_passes(client, runtime_image, tmp_path):
    from checker.verdict import Outcome, summarise
    from harness.results import Check
    from harness.sandbox.profiles import load_profile
    from harness.stage_names import Stage
    from harness.sandbox.run import run_stage
    from harness.sandbox.spec import Mount, RunSpec

    job, out = tmp_path / "job", tmp_path / "out"
    job.mkdir()
    out.mkdir()
    out.chmod(0o777)
    (job / "parity.py").write_text(SCRIPT)
    (job / "cases.json").write_text(json.dumps(ENCODERS))
    spec = RunSpec(stage=Stage.CHECK, image=runtime_image, command=("python", "-P", "/job/parity.py"),
                   mounts=(Mount(FIXTURES, "/fixtures"), Mount(job, "/job"), Mount(out, "/out", read_only=False),
                           Mount(REPO / "checker", "/opt/aecc/checker")),
                   wall_clock_s=900)
    result = run_stage(client, load_profile("cpu"), spec, tmp_path / "parity.log")
    assert result.outcome.value == "ok", result.log_tail(3000)
    data = json.loads((out / "parity.json").read_text())
    assert data["checker_sha256"] == XARES_CHECKER_SHA256, (
        "X-ARES's own checker changed: review checker.jobs.CHECK_LEVELS (what `rule` means), then this pin")

    covered = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert covered == {f for f, _ in ENCODERS}, "every fixture encoder is in the parity table"
    mismatches, table = [], []
    for row in data["rows"]:
        report = read_report(out / row["report"])
        checks = [Check.from_agent(c) for c in report["checks"]]
        verdict = summarise([c.to_dict() for c in checks], expect_rule_checks=True)
        ours = verdict.outcome is not Outcome.EXCLUDED
        table.append((row["fixture"], row["encoder"], row["xares"]["passed"], ours, verdict.headline[:90]))
        if ours != row["xares"]["passed"]:
            mismatches.append((row["fixture"], row["encoder"], row["xares"], verdict.headline))
    assert not mismatches, mismatches
    # Both sides actually disagree with something: the table is not all passes or all failures.
    assert {t[2] for t in table} == {True, False}, table
    # The cases the levels exist for: X-ARES passes them, and so does our rule level, with the
    # problem reported at its own level instead.
    by = {(t[0], t[1]): t for t in table}
    assert by[("nan_output", "encoder.py:NanOutputEncoder")][4].startswith("will be scored, but: finite")
    assert by[("template_fork_good", "template.py:MyEncoder")][2] is True
    assert by[("nondeterministic", "encoder.py:NondeterministicEncoder")][4].startswith("passes (")
    assert by[("hang_at_once", "encoder.py:HangAtOnceEncoder")][2:4] == (False, False)
