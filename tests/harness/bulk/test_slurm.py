"""The Slurm backend on a real one-node Slurm cluster (issue 15), started by these tests: a batch
submitted to Slurm gives the results the local backend gives, and the journal stays consistent
whatever Slurm does to the jobs.

- `aecc score --backend slurm` plans on the submit host, writes a batch file and script, submits one
  throttled array task per submission, maps the profile's GPU to GRES and records a PENDING job per
  submission that `aecc status` shows (refreshed from squeue); sbatch refusing the batch is an
  infrastructure error recorded as such; `--wait` exits as the local backend does (1 for an
  excluded submission, whose job is FAILED with exit 1);
- scored through Slurm, with one job requeued mid-encode (`scontrol requeue`: SIGTERM, then a rerun
  on the same node), and another whose worker is SIGKILLed mid-encode, requeued (the dead holder's
  lease is taken at once, its containers removed), cancelled with `scancel` mid-encode and
  resubmitted, every submission gets the local backend's numbers (Track B and every Track A value
  equal), each task is scored once, no container is left behind, requeues are recorded (restart
  count);
- a second and a third submission of the same inbox submit only what is not final, then nothing;
  a job resubmitted by hand for a finished submission exits 0 doing nothing, and a job whose
  submission another live job holds waits for it instead of working alongside.

The cluster (munged, slurmctld, slurmd as root, configuration under a temporary folder, a fake GPU
GRES on character devices) starts in about 1 s here and is stopped at the end of the session;
`scripts/slurm-setup.sh` (run by `make test`) installs Debian's packages where they are missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import pytest

from harness import schemas
from harness.journal import read_events, reduce
from tests.support import REPO
from tests.support.archives import marked_zip

AECC = str(Path(sys.executable).parent / "aecc")
GOOD = REPO / "examples" / "good_encoder"
DEMO = REPO / "demo_tasks"
TASKS = [str(DEMO / "tiny_tones_task.py"), str(DEMO / "tiny_crop_task.py")]
FAKE_GPUS = 2


# --- a one-node cluster ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """munged + slurmctld + slurmd of our own (ports, key, socket, state in `root`); only the
    processes started here are stopped, by their pids."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.devices: list[Path] = []
        self.start_s = 0.0

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return done

    def start(self) -> None:
        import psutil

        started = time.monotonic()
        root, host = self.root, socket.gethostname()
        # munged refuses a socket in a folder others cannot traverse; the key must be private.
        root.chmod(0o755)
        (root / "state").mkdir()
        (root / "spool").mkdir()
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        # Slurm refuses regular files as GRES devices: character devices (/dev/null's numbers), named
        # after this cluster so that two test sessions on one host do not share them.
        prefix = f"/dev/{root.name}-gpu"
        for i in range(FAKE_GPUS):
            device = Path(f"{prefix}{i}")
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))
            self.devices.append(device)
        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.95)
        self.conf.write_text("\n".join([
            "ClusterName=aecctest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}", "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
            f"AuthInfo=socket={root}/munge.socket", "CredType=cred/munge", f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool", f"SlurmctldPidFile={root}/slurmctld.pid",
            f"SlurmdPidFile={root}/slurmd.pid", f"SlurmctldLogFile={root}/slurmctld.log",
            f"SlurmdLogFile={root}/slurmd.log", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "MpiDefault=none", "ReturnToService=2", "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none", "JobCompType=jobcomp/none", "GresTypes=gpu", "KillWait=30",
            "MinJobAge=600",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory={memory_mb} Gres=gpu:{FAKE_GPUS} State=UNKNOWN",
            f"PartitionName=aecc Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
        (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File={prefix}[0-{FAKE_GPUS - 1}]\n")
        self._spawn("munged", ["munged", "-F", f"--key-file={key}", f"--socket={root}/munge.socket",
                               f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
                               f"--seed-file={root}/munged.seed"])
        self._until(lambda: (root / "munge.socket").exists(), "munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._until(lambda: self.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip() == "idle",
                    "the node idle in sinfo")
        self.start_s = time.monotonic() - started

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    def _until(self, condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited ({proc.returncode}) waiting for {what}: "
                                         f"{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout} s: {self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        out = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")):
            with contextlib.suppress(OSError):
                out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def stop(self) -> None:
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--user=root", check=False)  # our cluster's jobs only (our SLURM_CONF)
            with contextlib.suppress(AssertionError):
                self._until(lambda: not self.run("squeue", "--noheader", "--states=RUNNING,COMPLETING",
                                                 check=False).stdout.strip(), "no running job", timeout=90)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        for device in self.devices:
            with contextlib.suppress(OSError):
                device.unlink()

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key=value pairs."""
        text = self.run("scontrol", "show", "job", job_id).stdout
        return dict(re.findall(r"(\w+(?::\w+)?)=(\S*)", text))

    def running(self, job_id: str, out: Path) -> bool:
        """True while the array task may still run; its log in the failure when it ended."""
        state = self.squeue_state(job_id)
        if state.split(" ")[0] in ("FAILED", "COMPLETED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            log = out / "slurm" / "logs" / f"{job_id}.out"
            raise AssertionError(f"job {job_id} ended ({state}): {log.read_text()[-4000:] if log.exists() else ''}")
        return True

    def squeue_state(self, job_id: str) -> str:
        """The array task's state as squeue lists it ("" when it does not)."""
        rows = self.run("squeue", "--noheader", "--array", "--states=all", f"--jobs={job_id.split('_')[0]}",
                        "--format=%i %T", check=False).stdout.split("\n")
        return dict(row.split(" ", 1) for row in rows if " " in row).get(job_id, "")


@pytest.fixture(scope="session")
def slurm() -> Cluster:
    assert os.geteuid() == 0, "the test cluster's daemons run as root"
    # The set-up `make test` runs (scripts/host-tools.sh) installs them; so does this, where it can.
    setup = subprocess.run(["bash", str(REPO / "scripts" / "slurm-setup.sh")], capture_output=True, text=True,
                           timeout=900)
    assert setup.returncode == 0, setup.stderr
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="aecc-slurm-")))
    previous = os.environ.get("SLURM_CONF")
    try:
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)  # for `harness.bulk.status` in this process
        print(f"slurm test cluster up in {cluster.start_s:.1f} s")
        yield cluster
    finally:
        cluster.stop()
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(cluster.root, ignore_errors=True)


# --- inputs ---------------------------------------------------------------------------------------------


def make_inbox(root: Path, names: list[str]) -> tuple[Path, list[str]]:
    """Loose ZIPs of the example encoder, each with a comment of its own (so another sha256)."""
    import hashlib

    inbox = root / "inbox"
    inbox.mkdir()
    shas = []
    for name in names:
        data = marked_zip(GOOD, f"{name} {root.name}")
        (inbox / f"{name}.zip").write_bytes(data)
        shas.append(hashlib.sha256(data).hexdigest())
    return inbox, shas


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Path:
    from harness import demodata as demo

    root = tmp_path_factory.mktemp("xares-env")
    demo.generate(root, ["tiny_tones", "tiny_crop"], seed=0)
    os.system(f"chmod -R a+rX {root}")
    return root


def aecc(cluster: Cluster, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([AECC, *args], capture_output=True, text=True, timeout=timeout,
                          env={**cluster.env, "AECC_SLURM_POLL_S": "1"})


def score_args(inbox: Path, env: Path, out: Path, *more: str) -> list[str]:
    return ["score", str(inbox), "--data", str(env), "--tasks", *TASKS, "--out", str(out), "--repeats", "1", *more]


def status(cluster: Cluster, out: Path) -> dict:
    run = aecc(cluster, "status", str(out), "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    jsonschema.validate(doc, schemas.load("status"))
    return {s["sha256"]: s for s in doc["submissions"]}


def submitted_job(run: subprocess.CompletedProcess) -> str:
    found = re.search(r"Slurm job (\d+)", run.stderr)
    assert found, run.stderr[-3000:]
    return found.group(1)


def wait_for(condition, what: str, timeout: float = 1200, poll: float = 0.5, explain=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}" + (f"; {explain()}" if explain else ""))


def scheduler_of(out: Path, sha: str) -> dict:
    """The submission's scheduler record as the journal has it (no squeue)."""
    record = reduce(read_events(out)).submissions.get(sha) if (out / "journal").is_dir() else None
    return dict(record.scheduler) if record else {}


def is_done(out: Path, sha: str) -> bool:
    record = reduce(read_events(out)).submissions.get(sha)
    return record is not None and record.state.value == "done"


def events_of(out: Path, sha: str, stage: str, state: str) -> list:
    return [e for e in read_events(out) if e.sha256 == sha and e.stage == stage and e.state == state] \
        if (out / "journal").is_dir() else []


# --- tests ----------------------------------------------------------------------------------------------


def test_submit_writes_the_batch_maps_gres_and_records_pending_jobs(slurm, env, tmp_path):
    """No engine needed on the submit host: held jobs are inspected, then cancelled."""
    from harness.bulk.backends.slurm import BatchFile

    inbox, shas = make_inbox(tmp_path, ["one", "two"])
    out = tmp_path / "results-t4"
    run = aecc(slurm, *score_args(inbox, env, out, "--backend", "slurm", "--profile", "t4", "--array-limit", "1",
                                  "--sbatch-arg=--hold"))
    assert run.returncode == 0, run.stderr[-3000:]
    job = submitted_job(run)
    assert f"squeue -j {job}" in run.stderr and f"aecc status {out}" in run.stderr
    [path] = (out / "slurm").glob("*.json")
    batch = BatchFile.read(path)
    assert sorted(batch.submissions) == sorted(shas) and batch.job_id == job
    spec = batch.batch_spec()
    assert spec.profile == "t4" and spec.settings.repeats == 1 and [t.label for t in spec.settings.tasks] == [
        "tiny_tones", "tiny_crop"]
    assert BatchFile.read(path).batch_spec().to_dict() == spec.to_dict()  # plain data, read back the same
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    script = batch.script.read_text()
    assert f"export AECC_HOME={os.environ['AECC_HOME']}" in script
    assert f"export PATH={Path(AECC).parent}:" in script
    assert "--array=0-1%1" in script and "--requeue" in script
    # The t4 profile asks Slurm for a GPU; both array tasks are held pending, throttled to one at a time.
    first = slurm.job(f"{job}_0")
    assert "gres:gpu:1" in first.get("TresPerNode", ""), first
    assert first["JobState"] == "PENDING" and first["ArrayTaskThrottle"] == "1"
    assert first["NumCPUs"] == "2", "the profile's CPUs are reserved for the sandbox"
    subs = status(slurm, out)
    for index, sha in enumerate(batch.submissions):
        scheduler = subs[sha]["scheduler"]
        assert scheduler["backend"] == "slurm" and scheduler["job_id"] == f"{job}_{index}"
        assert scheduler["state"] == "PENDING" and scheduler["gres"] == "gpu:1"
        assert "Held" in scheduler["reason"], scheduler  # refreshed from squeue, not only the journal
    slurm.run("scancel", job)
    wait_for(lambda: status(slurm, out)[shas[0]]["scheduler"]["state"] == "CANCELLED", "CANCELLED in status",
             timeout=60)
    # The cpu profile asks for no GPU unless told.
    out_cpu = tmp_path / "results-cpu"
    run = aecc(slurm, *score_args(inbox, env, out_cpu, "--backend", "slurm", "--profile", "cpu",
                                  "--sbatch-arg=--hold"))
    assert run.returncode == 0, run.stderr[-3000:]
    cpu_job = submitted_job(run)
    assert "gpu" not in slurm.job(f"{cpu_job}_0").get("TresPerNode", "")
    slurm.run("scancel", cpu_job)
    # sbatch refusing the batch is an infrastructure error (exit 2), recorded, nothing submitted.
    out_bad = tmp_path / "results-bad"
    run = aecc(slurm, *score_args(inbox, env, out_bad, "--backend", "slurm", "--partition", "nosuch"))
    assert run.returncode == 2 and "sbatch refused the batch" in run.stderr, run.stderr[-3000:]
    assert {s["scheduler"]["state"] for s in status(slurm, out_bad).values()} == {"SUBMIT_FAILED"}
    # Slurm's flags mean nothing to the local backend: refused, not ignored.
    run = aecc(slurm, *score_args(inbox, env, tmp_path / "local", "--partition", "p"))
    assert run.returncode == 2 and "only apply to --backend slurm" in run.stderr


def test_status_trusts_squeue_where_it_answers_and_the_journal_elsewhere(slurm, tmp_path, monkeypatch):
    """A job squeue no longer knows that never recorded an end is GONE; a recorded end stands; with
    no controller to ask, the journal's states are shown as they are."""
    from harness.bulk.backends.slurm import live_schedulers

    never = slurm.run("sbatch", "--parsable", "--hold", "--wrap=true").stdout.strip()
    slurm.run("scancel", never)
    records = {"lost": {"backend": "slurm", "job_id": "999999_0", "array_job_id": "999999", "state": "PENDING"},
               "ended": {"backend": "slurm", "job_id": "999999_1", "array_job_id": "999999", "state": "COMPLETED"},
               "live": {"backend": "slurm", "job_id": never, "array_job_id": never, "state": "PENDING"}}
    now = live_schedulers(records)
    assert now["lost"]["state"] == "GONE" and "submits it again" in now["lost"]["reason"]
    assert now["ended"]["state"] == "COMPLETED"
    assert now["live"]["state"] == "CANCELLED", now["live"]
    # A controller that does not answer (squeue gives up after about 9 s).
    dead = tmp_path / "slurm.conf"
    dead.write_text(re.sub(r"SlurmctldPort=\d+", "SlurmctldPort=1", slurm.conf.read_text()))
    monkeypatch.setenv("SLURM_CONF", str(dead))
    assert live_schedulers(records) == records, "squeue unreachable: the journal's word"


def test_a_job_whose_submission_is_held_waits_and_exits_0_once_it_is_done(slurm, client, env, tmp_path):
    """The same submission in two jobs at once: the second waits on the lease instead of working
    alongside, and leaves without doing anything when the holder has finished it. (The holder is
    this test process; no stage runs.)"""
    from harness.journal import Journal, Leases, SubmissionState

    inbox, [sha] = make_inbox(tmp_path, ["held"])
    out = tmp_path / "results"
    run = aecc(slurm, *score_args(inbox, env, out, "--backend", "slurm", "--profile", "cpu", "--sbatch-arg=--hold"))
    assert run.returncode == 0, run.stderr[-3000:]
    job = submitted_job(run)
    journal = Journal(out)
    leases = Leases(out, journal.writer.id)
    try:
        assert leases.acquire(sha)
        leases.start_heartbeat()
        slurm.run("scontrol", "release", f"{job}_0")
        log = out / "slurm" / "logs" / f"{job}_0.out"
        wait_for(lambda: slurm.running(f"{job}_0", out) and log.exists() and "is held by" in log.read_text(),
                 "the job waiting for the lease", timeout=600)
        time.sleep(3)
        assert slurm.squeue_state(f"{job}_0") == "RUNNING", "still waiting, not working alongside"
        journal.submission(sha, SubmissionState.DONE, status="complete")
        leases.release(sha)
        wait_for(lambda: slurm.squeue_state(f"{job}_0") == "COMPLETED", "the job's exit 0", timeout=120)
    finally:
        leases.stop()
        journal.close()
    assert "was finished by the job that held it" in log.read_text()
    assert not [e for e in read_events(out) if e.kind.value == "stage"], "it did no work of its own"
    scheduler = status(slurm, out)[sha]["scheduler"]
    assert scheduler["state"] == "COMPLETED" and scheduler["exit_code"] == 0, scheduler


def test_an_excluded_submission_exits_1_as_locally_and_its_job_is_failed(slurm, client, env, tmp_path):
    """--wait's exit code is the local backend's: a contract failure (D != output_dim) is the
    submission's, 1, never 2; the job that found it exits 1 (Slurm: FAILED) after recording it."""
    import hashlib

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = marked_zip(REPO / "tests" / "fixtures" / "encoders" / "wrong_dim", f"wrong-dim {tmp_path.name}")
    (inbox / "dim.zip").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    out = tmp_path / "results"
    run = aecc(slurm, *score_args(inbox, env, out, "--backend", "slurm", "--profile", "cpu", "--wait"))
    assert run.returncode == 1, run.stderr[-4000:]
    sub = status(slurm, out)[sha]
    assert sub["state"] == "excluded" and any("output_dim_match" in f["reason"] for f in sub["failures"])
    assert sub["scheduler"]["state"] == "FAILED" and sub["scheduler"]["exit_code"] == 1, sub["scheduler"]
    assert sub["scheduler"]["submission_state"] == "excluded"
    again = aecc(slurm, *score_args(inbox, env, out, "--backend", "slurm", "--profile", "cpu", "--wait"))
    assert again.returncode == 1 and "not submitted: excluded earlier at check" in again.stderr, again.stderr[-3000:]


@pytest.mark.slow
def test_slurm_scores_like_local_through_a_requeue_a_hard_kill_and_resubmissions(slurm, client, env, tmp_path):
    inbox, shas = make_inbox(tmp_path, ["alpha", "beta"])
    reference = tmp_path / "local"
    local = aecc(slurm, *score_args(inbox, env, reference))
    assert local.returncode == 0, local.stderr[-4000:]

    out = tmp_path / "slurm"
    # The cpu profile (no GPU here) with a GPU asked for anyway: the GRES reaches the job all the same.
    args = score_args(inbox, env, out, "--backend", "slurm", "--array-limit", "1", "--profile", "cpu",
                      "--gres", "gpu:1")
    first = aecc(slurm, *args)
    assert first.returncode == 0, first.stderr[-4000:]
    job = submitted_job(first)
    [batch_path] = (out / "slurm").glob("*.json")
    order = json.loads(batch_path.read_text())["submissions"]
    assert sorted(order) == sorted(shas)

    # Task 0 is requeued mid-encode: SIGTERM, its stages stop and its lease is released; it runs
    # again on the same node (without Slurm's two-minute requeue delay) and resumes. Task 1 is held
    # meanwhile, so that it does not take the node while task 0 waits.
    slurm.run("scontrol", "hold", f"{job}_1")
    wait_for(lambda: slurm.running(f"{job}_0", out) and events_of(out, order[0], "encode", "running"),
             "task 0's encode")
    slurm.run("scontrol", "requeue", f"{job}_0")
    wait_for(lambda: slurm.squeue_state(f"{job}_0").startswith("PENDING"), "task 0 pending again", timeout=120)
    slurm.run("scontrol", "update", f"JobId={job}_0", "StartTime=now")
    wait_for(lambda: is_done(out, order[0]) or not slurm.running(f"{job}_0", out), "task 0 done")
    # Task 1's worker dies mid-encode (SIGKILL, as the OOM killer would): no clean-up, its lease and
    # its containers stay. Requeued, the new run on this host takes the dead holder's lease at once
    # (no waiting out the expiry) and removes what the dead one left.
    slurm.run("scontrol", "release", f"{job}_1")
    wait_for(lambda: slurm.running(f"{job}_1", out) and events_of(out, order[1], "encode", "running"),
             "task 1's encode")
    dead = scheduler_of(out, order[1])["pid"]
    os.kill(dead, 9)
    wait_for(lambda: slurm.squeue_state(f"{job}_1") == "FAILED", "task 1 failed", timeout=120)
    assert (out / "journal" / "leases" / f"{order[1]}.json").exists(), "the dead worker's lease is left"
    log = out / "slurm" / "logs" / f"{job}_1.out"
    slurm.run("scontrol", "requeue", f"{job}_1")

    def started_again():
        # A requeued job waits out Slurm's requeue delay (its BeginTime). An update that lands while
        # the requeue is still completing is overwritten by it, so it is repeated while the job waits.
        # Likewise a requeue that lands while Slurm is still completing the killed job is dropped (the
        # job stays FAILED: seen once in 22.05), so it is repeated while the job shows FAILED.
        state = slurm.squeue_state(f"{job}_1")
        if state == "FAILED":
            slurm.run("scontrol", "requeue", f"{job}_1", check=False)
        elif state.startswith("PENDING"):
            slurm.run("scontrol", "update", f"JobId={job}_1", "StartTime=now", check=False)
        info = scheduler_of(out, order[1])
        return info if info.get("pid") not in (None, dead) else None

    def queue() -> str:
        return slurm.run("squeue", "--noheader", "--array", "--states=all", f"--jobs={job}",
                         "--format=%i %T %r %S", check=False).stdout.strip().replace("\n", " | ")

    rerun = wait_for(started_again, "task 1 running again", timeout=300,
                     explain=lambda: f"squeue: {queue()}; journal: {scheduler_of(out, order[1])}")
    assert rerun["restart_count"] == 1 and rerun["state"] == "RUNNING", rerun
    wait_for(lambda: slurm.running(f"{job}_1", out) and [
        e for e in read_events(out) if e.sha256 == order[1] and e.kind.value == "stage" and e.state == "running"
        and e.writer.split("-")[-2] == str(rerun["pid"])], "a stage of the rerun")
    assert "is held by" not in log.read_text(), "a dead holder on this host is taken over at once"
    assert not _containers_of(client, {dead}), "the requeued job removed what the dead one left"
    # Then it is cancelled mid-stage (scancel: SIGTERM, stages stopped, containers removed, lease released).
    slurm.run("scancel", f"{job}_1")
    wait_for(lambda: slurm.squeue_state(f"{job}_1") == "CANCELLED", "task 1 cancelled", timeout=120)
    subs = status(slurm, out)
    s0, s1 = subs[order[0]], subs[order[1]]
    assert s0["state"] == "done" and s0["scheduler"]["state"] == "COMPLETED", s0["scheduler"]
    assert s0["scheduler"]["restart_count"] == 1 and s0["scheduler"]["node"] == socket.gethostname()
    assert s0["scheduler"]["gpus"] in {str(i) for i in range(FAKE_GPUS)}, "the GRES reached the job"
    assert s1["state"] != "done" and s1["scheduler"]["job_id"] == f"{job}_1"
    assert s1["scheduler"]["state"] == "CANCELLED" and s1["scheduler"]["restart_count"] == 1, s1["scheduler"]
    assert not (out / "journal" / "leases" / f"{order[1]}.json").exists(), "released on SIGTERM"

    # The same command again, waiting: only the unfinished submission is submitted, and resumes.
    second = aecc(slurm, *args, "--wait")
    assert second.returncode == 0, second.stderr[-4000:]
    assert f"{order[0][:12]} not submitted: done earlier" in second.stderr
    assert len(list((out / "slurm").glob("*.json"))) == 2
    assert "1/1 final (done 1)" in second.stderr

    # And again: nothing to submit, nothing redone, nothing rewritten.
    before = {p: p.read_bytes() for p in out.glob("*/result.json")}
    events_before = len(read_events(out))
    third = aecc(slurm, *args, "--wait")
    assert third.returncode == 0, third.stderr[-4000:]
    assert "nothing to submit" in third.stderr
    assert len(list((out / "slurm").glob("*.json"))) == 2
    assert {p: p.read_bytes() for p in out.glob("*/result.json")} == before
    assert not [e for e in read_events(out)[events_before:] if e.kind.value in ("stage", "submission")]

    # A job resubmitted by hand for a finished submission exits 0 and does nothing.
    events_before = len(read_events(out))
    again = slurm.run("sbatch", "--wait", "--array=0", str(batch_path.with_suffix(".sbatch")), timeout=300)
    assert again.returncode == 0, again.stderr
    later = read_events(out)[events_before:]
    assert not [e for e in later if e.kind.value in ("stage", "submission")]
    assert [e.data.get("note") for e in later if e.kind.value == "scheduler" and e.state is None
            and e.data.get("state") == "COMPLETED"] == ["final already: nothing to do"]

    # The same numbers as the local backend, each task scored once, no container left behind.
    events = read_events(out)
    for sha in shas:
        mine = json.loads((out / sha / "result.json").read_text())
        theirs = json.loads((reference / sha / "result.json").read_text())
        for a, b in zip(mine["tasks"], theirs["tasks"], strict=True):
            assert a["task"] == b["task"] and a["outcome"] == b["outcome"] == "scored"
            assert a["track_b"] == b["track_b"], (sha[:12], a["task"])
            assert a["track_a_detail"]["values"] == b["track_a_detail"]["values"], (sha[:12], a["task"])
        done = [e for e in events if e.sha256 == sha and e.stage == "score" and e.state == "done"]
        assert len(done) == 2, f"{sha[:12]}: each task scored once ({len(done)} completions)"
    pids = {e.data.get("pid") for e in events if e.kind.value == "scheduler" and e.data.get("pid")}
    assert len(pids) == 6, pids  # task 0 twice, task 1 three times, the rerun by hand
    assert not _containers_of(client, pids), "containers left behind by the jobs"


def _containers_of(client, pids: set[int]) -> list[str]:
    from harness.sandbox import engine

    rows = client.api.containers(all=True, filters={"label": [f"{engine.LABEL_MANAGED}=1"]})
    return [r["Names"][0] for r in rows if int((r.get("Labels") or {}).get(engine.LABEL_OWNER_PID, 0)) in pids]
