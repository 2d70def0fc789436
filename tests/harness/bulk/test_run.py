"""An inbox scored in one resumable run, on the real engine (issue 11):

- a mixed batch from an mbox and loose ZIPs gets the expected outcome per submission: two good ones
  scored, a duplicate under another name and sender scored once and kept as an alias, a contract
  failure excluded by a blocking check, an encode OOM failing its task only, a hostile archive
  refused at intake, a mail without a ZIP listed as unusable; `aecc status --json` says so;
- a SIGKILL of the orchestrator during build, during encode and during score, then the same
  command again, gives the results of an uninterrupted run (Track B equal), no duplicate rows and
  no leftover containers;
- an engine stopped mid-run and started again is an infrastructure failure that is retried, never
  recorded as the submission's failure;
- two processes on one RESULTS cooperate: each submission is scored once;
- GPU stages take distinct GPUs by UUID (a fake NVML with two GPUs; the device requests are read
  back from the engine with `docker inspect` of created containers).
"""

from __future__ import annotations

import email.message
import email.utils
import io
import json
import mailbox
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import jsonschema
import pytest

from harness import schemas
from harness.journal import read_events
from tests.support import REPO
from tests.support.archives import marked_zip

pytestmark = pytest.mark.slow

AECC = str(Path(sys.executable).parent / "aecc")
GOOD = REPO / "examples" / "good_encoder"
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
DEMO = REPO / "demo_tasks"
TASKS = [str(DEMO / "tiny_tones_task.py"), str(DEMO / "tiny_crop_task.py")]

HOG = '''

_forward = SpectralEncoder.forward


def _maybe_hog(self, audio):
    if 24000 < audio.shape[-1] < 50000:  # tiny_tones' batches, not X-ARES's own check call (2 x 50000)
        self._hog = [torch.ones(64 * 1024 * 1024) for _ in range(64)]  # 16 GiB
    return _forward(self, audio)


SpectralEncoder.forward = _maybe_hog
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory, client) -> Path:
    from harness import demodata as demo

    root = tmp_path_factory.mktemp("xares-env")
    demo.generate(root, ["tiny_tones", "tiny_crop"], seed=0)
    os.system(f"chmod -R a+rX {root}")
    return root


@pytest.fixture(scope="module")
def small_profile(tmp_path_factory) -> Path:
    """The cpu profile with 3 GiB of memory, so that the hog OOMs in seconds, not after 12 GiB."""
    folder = tmp_path_factory.mktemp("profile")
    profile = json.loads((REPO / "sandbox_profiles" / "cpu.json").read_text())
    profile.update(name="small", memory="3GiB")
    (folder / "small.json").write_text(json.dumps(profile))
    shutil.copy(REPO / "sandbox_profiles" / "seccomp.json", folder / "seccomp.json")
    return folder / "small.json"


def pdf(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def mail(sender: str, address: str, subject: str, date: str, attachments: list[tuple[str, bytes, str]]) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = email.utils.formataddr((sender, address))
    msg["To"] = "organizers@aecc.invalid"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = email.utils.make_msgid(domain="aecc.invalid")
    msg.set_content("our submission")
    for name, data, kind in attachments:
        maintype, subtype = kind.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def hog_folder(tmp: Path) -> Path:
    folder = tmp / "hog"
    folder.mkdir()
    (folder / "encoder.py").write_text((GOOD / "encoder.py").read_text() + HOG)
    return folder


def traversal_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("encoder.py", (GOOD / "encoder.py").read_text())
        zf.writestr("../../escape.py", "print('out')\n")
    return buf.getvalue()


def repackaged(folder: Path) -> bytes:
    """The same encoder packaged otherwise: GitHub's "Download ZIP" layout (one top folder), another
    file name, a comment, a README of its own, compressed differently. Its numbers must not move."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("xares-team-b-main/README.md", "# Team B\nour encoder\n")
        zf.writestr("xares-team-b-main/team_b_encoder.py",
                    "# Team B's copy\n" + (folder / "encoder.py").read_text())
    return buf.getvalue()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> dict:
    """Six ZIPs (an mbox of four mails, two loose ZIPs) and one mail without a ZIP."""
    root = tmp_path_factory.mktemp("inbox")
    good_a = marked_zip(GOOD, "team-a")
    good_b = repackaged(GOOD)
    wrong_dim = marked_zip(FIXTURES / "wrong_dim", "wrong-dim")
    hog = marked_zip(hog_folder(root), "hog")
    box = mailbox.mbox(root / "submissions.mbox")
    box.add(mail("Team A", "a@uni.example", "AECC submission", "Mon, 28 Apr 2025 10:00:00 +0000",
                 [("team_a.zip", good_a, "application/zip"), ("report.pdf", pdf(4), "application/pdf")]))
    box.add(mail("Team C", "c@lab.example", "our encoder", "Mon, 28 Apr 2025 11:00:00 +0000",
                 [("final.zip", good_a, "application/zip"), ("paper.pdf", pdf(6), "application/pdf")]))
    box.add(mail("Team D", "d@lab.example", "submission D", "Tue, 29 Apr 2025 09:00:00 +0000",
                 [("dim.zip", wrong_dim, "application/zip"), ("d.pdf", pdf(8), "application/pdf")]))
    box.add(mail("Team E", "e@lab.example", "where is it", "Tue, 29 Apr 2025 10:00:00 +0000", []))
    box.flush()
    box.close()
    (root / "team_b.zip").write_bytes(good_b)
    (root / "hog.zip").write_bytes(hog)
    (root / "evil.zip").write_bytes(traversal_zip())
    return {"root": root, "mbox": root / "submissions.mbox", "zips": [root / "team_b.zip", root / "hog.zip",
                                                                     root / "evil.zip"],
            "sha": {k: __import__("hashlib").sha256(v).hexdigest() for k, v in
                    {"good_a": good_a, "good_b": good_b, "wrong_dim": wrong_dim, "hog": hog}.items()}}


def aecc(*args: str, env: dict | None = None, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([AECC, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def score_args(inputs: list[Path], env: Path, out: Path, profile: Path | None = None) -> list[str]:
    args = ["score", *map(str, inputs), "--data", str(env), "--tasks", *TASKS, "--out", str(out), "--repeats", "1"]
    if profile is not None:
        args += ["--profile", str(profile)]
    return args


def status(out: Path) -> dict:
    run = aecc("status", str(out), "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    jsonschema.validate(doc, schemas.load("status"))
    return doc


def by_sha(doc: dict) -> dict:
    return {s["sha256"]: s for s in doc["submissions"]}


def test_mixed_batch(client, env, inbox, small_profile, tmp_path):
    out = tmp_path / "results"
    run = aecc(*score_args([inbox["mbox"], *inbox["zips"]], env, out, small_profile))
    assert run.returncode == 1, run.stderr[-4000:]  # some submissions failed: exit 1, not 0 and not 2
    doc = status(out)
    subs = by_sha(doc)
    sha = inbox["sha"]
    assert set(subs) >= {sha["good_a"], sha["good_b"], sha["wrong_dim"], sha["hog"]}
    # Two good ones, scored; the duplicate (same bytes, another name and sender) is an alias, scored once.
    good_a = subs[sha["good_a"]]
    assert good_a["state"] == "done" and {t["outcome"] for t in good_a["tasks"]} == {"scored"}
    assert sorted(a["file_name"] for a in good_a["arrivals"]) == ["final.zip", "team_a.zip"]
    assert good_a["senders"] == ["a@uni.example", "c@lab.example"]
    assert subs[sha["good_b"]]["state"] == "done"
    # The same encoder in another package (layout, file name, comment, README, compression): the seeds
    # come from the run and the task only, so Track A's every repeat and Track B are equal.
    other = json.loads((out / sha["good_b"] / "result.json").read_text())
    assert other["submission"]["encoder_file"].endswith("team_b_encoder.py")
    mine = {t["task"]: t for t in json.loads((out / sha["good_a"] / "result.json").read_text())["tasks"]}
    for task in other["tasks"]:
        assert task["track_a_detail"] == mine[task["task"]]["track_a_detail"], task["task"]
        assert task["track_b"] == mine[task["task"]]["track_b"] and task["track_a"] == mine[task["task"]]["track_a"]
    result = json.loads((out / sha["good_a"] / "result.json").read_text())
    jsonschema.validate(result, schemas.load("result"))
    assert result["report"]["pages"] == 4 and result["name"] == "Team A"
    assert result["checks"]["verdict"] == "passed" and not result["checks"]["blocking"]
    assert result["images"]["submission_id"].startswith("sha256:")
    assert result["resources"]["check"]["peak_host_memory_bytes"] > 0
    score_events = [e for e in read_events(out) if e.sha256 == sha["good_a"] and e.stage == "score"
                    and e.state == "done"]
    assert len(score_events) == 2, "each task scored once, whatever the number of arrivals"
    # The contract failure is excluded by a blocking check (D != output_dim), not scored.
    dim = subs[sha["wrong_dim"]]
    assert dim["state"] == "excluded"
    assert any("output_dim_match" in f["reason"] for f in dim["failures"]), dim["failures"]
    assert not (out / sha["wrong_dim"] / "result.json").exists()
    # The OOM fails its task only; its stricter checks' failures are warnings, not an exclusion.
    hog = json.loads((out / sha["hog"] / "result.json").read_text())
    tasks = {t["task"]: t for t in hog["tasks"]}
    assert tasks["tiny_tones"]["outcome"] == "failed" and "oom" in tasks["tiny_tones"]["reason"]
    assert tasks["tiny_crop"]["outcome"] == "scored"
    assert hog["status"] == "partial"
    # The hostile archive is refused at intake (a submission's failure, with the rule it broke); the
    # mail without a ZIP is listed with its reason.
    evil = next(s for s in doc["submissions"] if any(a["file_name"] == "evil.zip" for a in s["arrivals"]))
    assert evil["state"] == "excluded" and "parent_traversal" in evil["failures"][0]["reason"]
    assert [u["reason"] for u in doc["unusable"]] == ["no_zip"]
    assert doc["unusable"][0]["sender_address"] == "e@lab.example"
    # A report over six pages is a warning recorded with the submission, not a failure.
    assert any("8 pages" in w for a in dim["arrivals"] for w in a["warnings"]), dim["arrivals"]
    assert good_a["arrivals"][0]["report_pages"] == 4
    # A second run of the same command redoes nothing and writes no duplicate.
    before = {p: p.read_bytes() for p in out.glob("*/result.json")}
    again = aecc(*score_args([inbox["mbox"], *inbox["zips"]], env, out, small_profile))
    assert again.returncode == 1
    assert {p: p.read_bytes() for p in out.glob("*/result.json")} == before
    assert by_sha(status(out)).keys() == subs.keys()


def _kill_when(out: Path, stage: str, state: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {stage} started: {proc.stderr.read()[-3000:]}")
        if (out / "journal").is_dir() and any(e.stage == stage and e.state == state for e in read_events(out)):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return
        time.sleep(0.05)
    raise AssertionError(f"{stage} never started")


def _containers_of(client, pid: int) -> list[str]:
    from harness.sandbox import engine

    rows = client.api.containers(all=True, filters={"label": [f"{engine.LABEL_OWNER_PID}={pid}"]})
    return [r["Names"][0] for r in rows]


def test_kill_at_three_moments_then_resume_gives_the_uninterrupted_results(client, env, tmp_path):
    """Each moment gets a ZIP of its own (the same encoder, another comment), so that its build really
    runs; with seeds independent of the submission, every one must give the reference's numbers."""
    def copy(name: str) -> Path:
        sub = tmp_path / name
        shutil.copytree(GOOD, sub)
        (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text() + f"\n# {name} {tmp_path.name}\n")
        return sub

    reference = tmp_path / "reference"
    ok = aecc(*score_args([copy("reference-sub")], env, reference))
    assert ok.returncode == 0, ok.stderr[-3000:]
    [expected] = [json.loads(p.read_text()) for p in reference.glob("*/result.json")]
    for stage in ("build", "encode", "score"):
        sub, out = copy(f"killed-in-{stage}"), tmp_path / f"results-{stage}"
        proc = subprocess.Popen([AECC, *score_args([sub], env, out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        _kill_when(out, stage, "running", proc)
        time.sleep(1)  # let the engine register a container that was starting as the harness died
        final = aecc(*score_args([sub], env, out))
        assert final.returncode == 0, final.stderr[-3000:]
        assert not _containers_of(client, proc.pid), "the rerun removes what the killed run left"
        [got] = [json.loads(p.read_text()) for p in out.glob("*/result.json")]
        for mine, theirs in zip(got["tasks"], expected["tasks"], strict=True):
            assert mine["task"] == theirs["task"] and mine["outcome"] == theirs["outcome"] == "scored"
            assert mine["track_b"] == theirs["track_b"], (stage, mine["task"])
            assert mine["track_a_detail"]["values"] == theirs["track_a_detail"]["values"], (stage, mine["task"])
        # Killed in encode or score, the rerun takes fetch and check from the journal: their peaks stay.
        assert list(got["resources"])[:2] == ["fetch", "check"], (stage, list(got["resources"]))
        assert got["resources"]["check"]["peak_host_memory_bytes"] > 0, stage
        doc = status(out)
        assert len(doc["submissions"]) == 1 and doc["submissions"][0]["state"] == "done"
        assert [t["task"] for t in doc["submissions"][0]["tasks"]] == ["tiny_tones", "tiny_crop"]
        done = [e for e in read_events(out) if e.stage == "score" and e.state == "done"]
        assert len(done) == 2, f"killed in {stage}: no task scored twice"


def test_rescore_reuses_the_embeddings_and_reruns_only_scoring(client, env, tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(GOOD, sub)
    (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text() + f"\n# rescore {tmp_path.name}\n")
    out = tmp_path / "results"
    assert aecc(*score_args([sub], env, out)).returncode == 0
    first = len(read_events(out))
    again = aecc(*score_args([sub], env, out), "--rescore")
    assert again.returncode == 0, again.stderr[-3000:]
    later = read_events(out)[first:]
    assert not [e for e in later if e.stage == "encode" and e.state == "running"], "embeddings reused"
    assert len([e for e in later if e.stage == "score" and e.state == "done"]) == 2
    assert "encode tiny_tones: done earlier (resumed)" in again.stderr


def test_an_engine_stopped_mid_run_is_retried_never_the_submissions_failure(client, env, tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(GOOD, sub)
    (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text() + f"\n# infra {tmp_path.name}\n")
    out = tmp_path / "results"
    proc = subprocess.Popen([AECC, *score_args([sub], env, out), "--retries", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "AECC_RETRY_BACKOFF_S": "5"})
    # (a short backoff: the default waits 10 s, then 20 s)
    try:
        deadline = time.monotonic() + 600
        while not any(e.stage == "encode" and e.state == "running" for e in read_events(out)) if (out / "journal").is_dir() else True:
            assert time.monotonic() < deadline and proc.poll() is None, "encode never started"
            time.sleep(0.05)
        subprocess.run(["pkill", "-x", "dockerd"], check=True)
        time.sleep(3)
    finally:
        # The project's own set-up brings the engine back (and its egress rules), as an operator would.
        restart = subprocess.run(["bash", str(REPO / "scripts" / "engine-setup.sh")], capture_output=True, text=True,
                                 timeout=300)
        assert restart.returncode == 0, restart.stderr
    stdout, stderr = proc.communicate(timeout=1800)
    assert proc.returncode == 0, stderr[-4000:]
    events = read_events(out)
    states = [e.state for e in events if e.kind.value == "submission"]
    assert "error" in states and states[-1] == "done", states
    assert "failed" not in {e.state for e in events if e.kind.value == "stage"}
    [result] = [json.loads(p.read_text()) for p in out.glob("*/result.json")]
    assert {t["outcome"] for t in result["tasks"]} == {"scored"}
    assert "retrying in" in stderr


def test_two_processes_on_one_results_cooperate(client, env, tmp_path):
    subs = []
    for name in ("one", "two"):
        sub = tmp_path / name
        shutil.copytree(GOOD, sub)
        (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text() + f"\n# {name} {tmp_path.name}\n")
        subs.append(sub)
    out = tmp_path / "results"
    procs = [subprocess.Popen([AECC, *score_args(subs, env, out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=1800)
        assert p.returncode == 0, err[-3000:]
    events = read_events(out)
    for sha in {e.sha256 for e in events if e.sha256}:
        done = [e for e in events if e.sha256 == sha and e.stage == "score" and e.state == "done"]
        assert len(done) == 2, f"{sha[:12]}: each task scored once, by one process ({len(done)} completions)"
    assert len(list(out.glob("*/result.json"))) == 2


def test_gpu_stages_take_distinct_gpus(client, base_image, tmp_path):
    """Two GPU stages at once get two different GPUs (fake NVML with two), and the engine receives
    device requests pinned to exactly those UUIDs. A real GPU host must still confirm that the
    NVIDIA runtime honours them and that NVML sees each container's processes on its own GPU."""
    from harness.sandbox.profiles import load_profile
    from harness.stage_names import Stage
    from harness.sandbox.run import create_container
    from harness.sandbox.spec import RunSpec
    from harness.slots import Slots, plan

    uuids = ["GPU-aaaaaaaa-0000-0000-0000-000000000001", "GPU-bbbbbbbb-0000-0000-0000-000000000002"]
    capacity = plan(memory_bytes=12 * 2**30, cpus=2, host_memory_bytes=96 * 2**30, host_cpus=16, gpus=uuids)
    slots = Slots(capacity)
    assert capacity.heavy >= 2
    taken: list[str] = []
    barrier = threading.Barrier(2)

    def stage() -> None:
        with slots.gpu() as uuid:
            taken.append(uuid)
            barrier.wait(timeout=10)  # both hold a GPU at the same moment

    threads = [threading.Thread(target=stage) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(uuids)
    profile = load_profile("t4")
    created = []
    try:
        for uuid in taken:
            spec = RunSpec(stage=Stage.ENCODE, image=base_image, command=("true",), gpu_uuid=uuid)
            created.append(create_container(client, profile, spec))
        requests = [c.attrs["HostConfig"]["DeviceRequests"] for c in (client.containers.get(x.id) for x in created)]
        assert [r[0]["DeviceIDs"] for r in requests] == [[u] for u in taken]
    finally:
        for c in created:
            c.remove(force=True)
