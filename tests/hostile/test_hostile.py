"""The red-team suite: hostile and broken submissions (tests/hostile/cases/<id>/expected.json)
driven through `aecc validate` and `aecc score`'s Python API on the real engine.

Every case ends with its expected verdict AND a clean host: no container left by any harness
process the suite started, no new volume, the planted canary files (a host secret and a fake
signing key in $AECC_HOME/keys) byte-identical, no HOSTILE-ESCAPE-* file anywhere it could land,
no process of the submission alive on the host. Cases that reveal a harness gap keep their safe
expectation in `test_harness_gap` (xfail strict) and their host checks in the main tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

import tests.support.hostile as hs


from tests.support import archives as _archives
RawEntry, build_zip = _archives.RawEntry, _archives.build_zip

pytestmark = pytest.mark.hostile

RESULTS: dict[str, object] = {}  # case id -> what its run returned (for test_harness_gap)


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def profiles(tmp_path_factory):
    return hs.make_profiles(tmp_path_factory.mktemp("profiles"))


@pytest.fixture(scope="session")
def canaries(aecc_home, tmp_path_factory):
    return hs.plant_canaries(tmp_path_factory.mktemp("host-canaries"), aecc_home)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    ids = hs.cases_by_drive("validate-zoo") + hs.cases_by_drive("score-zoo")
    return hs.build_zoo(tmp_path_factory.mktemp("zoo") / "zoo", ids)


@pytest.fixture(autouse=True)
def host_guard(client, canaries, aecc_home, tmp_path):
    """The host checks every case ends with."""
    volumes = hs.volume_names(client)
    yield
    deadline = time.monotonic() + 30  # a SIGTERMed harness may still be removing its containers
    while hs.leftover_containers(client) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not hs.leftover_containers(client), "containers left behind"
    new_volumes = hs.volume_names(client) - volumes
    assert not new_volumes, f"volumes left behind: {new_volumes}"
    for path, digest in canaries.items():
        assert path.is_file() and hs.sha256(path) == digest, f"canary {path} changed"
    assert not hs.escape_files(aecc_home, tmp_path.parent), "files written outside the intended folders"
    deadline = time.monotonic() + 10
    while hs.marker_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not hs.marker_processes(), "a submission's process outlived its container"


# ------------------------------------------------------------------------------------ archives

def _entry(spec: dict) -> RawEntry:
    import stat

    if spec.get("base"):
        return RawEntry(spec["name"], (hs.CASES / "baseline" / "encoder.py").read_bytes())
    if "zeros" in spec:
        return RawEntry(spec["name"], b"\0" * spec["zeros"])
    if "nested" in spec:
        return RawEntry(spec["name"], build_zip([_entry(e) for e in spec["nested"]]))
    mode = getattr(stat, spec["mode"]) | 0o777 if "mode" in spec else None
    return RawEntry(spec["name"], spec.get("data", "").encode(), mode=mode, declared_size=spec.get("declared_size"),
                    crc=spec.get("crc"), flags=spec.get("flags", 0))


def build_archive(spec: dict) -> bytes:
    if spec.get("not_a_zip"):
        buf = __import__("io").BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            data = (hs.BASE).read_bytes()
            info = tarfile.TarInfo("encoder.py")
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
        return buf.getvalue()
    entries = [_entry(e) for e in spec["entries"]]
    entries.append(RawEntry("aecc_hostile_base.py", hs.BASE.read_bytes()))
    if spec.get("many"):
        entries += [RawEntry(f"many/{i:05d}.txt", b"x", method=0) for i in range(spec["many"])]
    if spec.get("overlap"):
        # a second central record pointing at the first entry's local header
        first = build_zip(entries)
        entries.append(RawEntry("alias.py", entries[0].data, header_offset=0))
        del first
    data = build_zip(entries)
    if spec.get("truncate"):
        data = data[: int(len(data) * spec["truncate"])]
    return data


@pytest.mark.parametrize("cid", hs.cases_by_drive("validate-archive"))
def test_hostile_archive(cid, client, aecc_home, tmp_path):
    exp = hs.case(cid)
    box = tmp_path / "inbox"
    box.mkdir()
    archive = box / "submission.zip"
    archive.write_bytes(build_archive(exp["archive"]))
    store = aecc_home / "store"
    before = set(os.listdir(store)) if store.is_dir() else set()
    args = ["validate", str(archive), "--encoder", "encoder.py:HostileEncoder", "--max-seconds", "10"]
    run = hs.aecc(args, tmp_path / "run", timeout=600)
    hs.assert_verdict(run.report, exp["expect"], run.rc)
    # The verdict is a report, never a traceback; no raw terminal escape reaches it or the terminal.
    assert "Traceback" not in run.stderr + run.stdout
    assert "\x1b" not in json.dumps(run.report, ensure_ascii=False)
    assert "\x1b[2J" not in run.stdout + run.stderr and "\u202e" not in run.stdout + run.stderr
    assert set(os.listdir(box)) == {"submission.zip"}  # nothing extracted next to the archive
    after = set(os.listdir(store)) if store.is_dir() else set()
    if exp["expect"]["status"] == "failed":
        assert after == before, "a refused archive left an entry in the store"
    if cid == "arch_nested":
        sha = run.report["submission"]["sha256"]
        files = store / sha / "files"
        inner = files / "inner.zip"
        assert inner.is_file() and not inner.is_symlink()
        assert sorted(p.name for p in files.iterdir()) == ["aecc_hostile_base.py", "encoder.py", "inner.zip"]


# ------------------------------------------------------------------------ build and folders

@pytest.mark.parametrize("cid", hs.cases_by_drive("validate-folder"))
def test_hostile_folder(cid, client, profiles, tmp_path):
    exp = hs.case(cid)
    sub = hs.submission_from_case(cid, tmp_path / "sub")
    run = hs.aecc(["validate", str(sub), "--encoder", "encoder.py:HostileEncoder", "--profile",
                   str(profiles["small"]), "--max-seconds", "10"], tmp_path / "run", timeout=900)
    hs.assert_verdict(run.report, exp["expect"], run.rc)
    logs = "".join(hs.log_text(p) for p in run.report.get("logs", {}).values())
    if cid == "secrets_checker_shadow":
        assert "HOSTILE-FORGED-AGENT-RAN" not in logs + run.stdout
        assert "HOSTILE" not in json.dumps(run.report.get("checker", {}))
    if cid == "build_setup_py_root":
        # Not on the host (the guard looks for HOSTILE-ESCAPE-*), and not in the built image either.
        from harness.sandbox.profiles import load_profile
        from harness.sandbox.run import run_stage
        from harness.sandbox.spec import RunSpec

        code = ("import os\nhits=[os.path.join(r,n) for r,d,f in os.walk('/') if not r.startswith(('/proc','/sys'))"
                " for n in f+d if n.startswith('HOSTILE-ESCAPE')]\nprint('HITS', hits)")
        result = run_stage(client, load_profile("cpu"), RunSpec(stage="check", image=run.report["submission"]["image"],
                                                                 command=("python", "-c", code), wall_clock_s=120),
                           tmp_path / "find.log")
        assert "HITS []" in result.log_path.read_text(), result.log_path.read_text()[-2000:]


@pytest.fixture(scope="module")
def local_index(tmp_path_factory, client):
    from harness.layers.build import build_chain
    from harness.layers.model import RUNTIME_TORCH, torch_layer

    # The index serves only the hostile packages: make sure no trusted layer needs building from it.
    build_chain(client, torch_layer(RUNTIME_TORCH), log=lambda m: None)
    index = hs.LocalIndex(tmp_path_factory.mktemp("index"))
    for cid, name in (("build_install_time_code", "aecc-hostile-install"), ("build_slow_install", "aecc-hostile-slow"),
                      ("build_huge_install", "aecc-hostile-huge")):
        index.add_sdist(hs.CASES / cid / "index_package", name)
    yield index
    index.close()


@pytest.mark.parametrize("cid", hs.cases_by_drive("validate-index"))
def test_hostile_install(cid, client, profiles, local_index, tmp_path):
    exp = hs.case(cid)
    sub = hs.submission_from_case(cid, tmp_path / "sub")
    profile = profiles["buildwall"] if cid == "build_slow_install" else profiles["small"]
    run = hs.aecc(["validate", str(sub), "--encoder", "encoder.py:HostileEncoder", "--profile", str(profile),
                   "--max-seconds", "10", "--pip-index-url", local_index.url("hostile:HOSTILE-PIP-PASSWORD")],
                  tmp_path / "run", timeout=120 if cid == "build_slow_install" else 900,
                  env={"AECC_PIP_TRUSTED_HOST": hs.DOCKER0})
    RESULTS[cid] = run
    try:
        if cid == "build_install_time_code":
            hs.assert_verdict(run.report, exp["expect"], run.rc)
            build_log = hs.log_text(hs.by_id(run.report)["build"].get("log"))
            [f] = hs.facts(build_log, "install")[:1] or [None]
            assert f is not None, build_log[-3000:]
            status = f["status"]
            assert status["Uid"].split()[:2] == ["10001", "10001"] and f["euid"] == 10001
            assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
            assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
            assert f["/HOSTILE-ESCAPE-install"] in (13, 30)  # only its own writable layer and tmpfs
            assert not any(v is True for v in f["password_seen"].values()) and f["env_password"] is False
            assert "HOSTILE-PIP-PASSWORD" not in build_log
        elif cid == "build_slow_install":
            assert run.report.get("status") != "passed"
        elif cid == "build_huge_install":
            assert run.rc in (0, 1)
    finally:
        image = (run.report.get("submission") or {}).get("image")
        if image and cid == "build_huge_install":
            client.images.remove(image, force=True)  # made by this test: 1 GiB of junk


# ------------------------------------------------------------------------- the zoo: validate

def _zoo_run(cid, zoo, profiles, tmp_path) -> hs.Run:
    exp = hs.case(cid)
    return hs.aecc(["validate", str(zoo), "--encoder", f"{cid}.py:HostileEncoder", "--profile",
                    str(profiles[exp.get("profile", "small")]), "--max-seconds", "10"], tmp_path / "run", timeout=900)


@pytest.mark.parametrize("cid", hs.cases_by_drive("validate-zoo"))
def test_hostile_encoder_validate(cid, client, zoo, profiles, tmp_path):
    exp = hs.case(cid)
    listener = hs.Listener() if cid.startswith("net_") else None
    host_proc = None
    if cid.startswith("priv_kill"):
        # a process of the sandbox's uid on the host: a kill(-1) that escaped the PID namespace would end it
        host_proc = subprocess.Popen(["sleep", "600"], user=10001, group=10001)
    try:
        run = _zoo_run(cid, zoo, profiles, tmp_path)
    finally:
        if listener is not None:
            listener.close()
    RESULTS[cid] = (run, listener.accepted if listener else None)
    logs = {k: hs.log_text(v) for k, v in run.report.get("logs", {}).items()}
    try:
        if not exp.get("gap"):
            hs.assert_verdict(run.report, exp["expect"], run.rc)
        assert "Traceback (most recent call last)" not in run.stderr
        check_log, fetch_log = logs.get("check", ""), logs.get("fetch", "")
        if cid == "res_tmp_fill":
            [f] = hs.facts(check_log, "tmp_fill")
            assert f["tmp"]["errno"] == 28 and f["tmp"]["written"] <= 64 * 2**20
            assert f["shm"]["errno"] == 28 and f["shm"]["written"] <= 64 * 2**20
            assert f["root"] in (13, 30) and f["usr"] in (13, 30) and f["src"] in (13, 30) and f["cache"] in (13, 30)
        elif cid == "res_disk_fill_out":
            # The cap is the harness's watcher (a size check every 0.5 s), so the writer is killed
            # mid-write (no facts line) or finishes its 768 MiB first; the verdict above holds either
            # way. What must hold too: the kill was for the cap, and the file left no trace on the host.
            fill = hs.facts(check_log, "disk_fill")
            if fill:
                assert fill[0]["written"] > 64 * 2**20
            scratch = Path(os.environ["AECC_HOME"]) / "tmp"
            assert not list(scratch.glob("*/HOSTILE-fill.bin"))  # the fetch-* and check-* report folders
        elif cid == "res_disk_fill_cache":
            # Killed by the cap's poll, mid-write or (on a very fast disk) after; what it left in the
            # submission's cache is removed either way, so the host keeps none of it.
            assert "downloads in the cache passed its cap of 536870912 B" in json.dumps(run.report)
            caches = Path(os.environ["AECC_HOME"]) / "cache"
            assert not list(caches.glob("*/xdg/HOSTILE-fill.bin"))
        elif cid == "res_fork_bomb":
            [f] = hs.facts(check_log, "fork_bomb")
            assert f["errno"] == 11 and f["forked"] < 128
        elif cid in ("res_hang_forward", "res_sigterm_ignorer"):
            assert run.report["timings"]["check_s"] < 15 + 30
        elif cid == "res_log_flood":
            for name in ("fetch", "check"):
                assert Path(run.report["logs"][name]).stat().st_size <= 2**20
            assert run.peak_rss < 400 * 2**20, f"harness RSS {run.peak_rss / 2**20:.0f} MiB"
        elif cid == "net_after_fetch":
            [f] = hs.facts(check_log, "network")
            assert f["ifaces"] == ["lo"]
            assert "ok" not in (f["public"], f["host_docker0"]) and not isinstance(f["dns"], list)
            assert listener.accepted == 0
        elif cid == "net_fetch_reaches_host":
            assert hs.facts(fetch_log, "fetch_host")
        elif cid == "fetch_sees_no_data":
            [f] = hs.facts(fetch_log, "fetch_mounts")
            allowed = {"/", "/opt/aecc/checker", "/out", "/cache", "/run/aecc-ca.pem", "/tmp", "/dev/shm",
                       "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/usr/sbin/docker-init"}
            extra = [m for m in f["mounts"] if m not in allowed and not m.startswith(("/proc", "/sys", "/dev"))]
            assert not extra, extra
            assert not [k for k in f["env"] if "KEY" in k or "TOKEN" in k or "SECRET" in k or "PASSWORD" in k]
        elif cid == "priv_escalation":
            [f] = hs.facts(check_log, "privilege")
            st = f["status"]
            assert st["Uid"].split()[0] == "10001" and int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0
            assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
            for key in ("setuid0", "setgid0", "mount_tmpfs", "unshare_user", "unshare_mnt", "ptrace_parent",
                        "mknod_char", "chown_root", "dev_mem", "sysrq", "core_pattern"):
                assert f[key] != "ok", (key, f[key])
        elif cid == "priv_kill_pid1":
            [f] = hs.facts(fetch_log, "kill_pid1")[:1]
            assert f["kill1"] == "ok" and f["ppid"] == 1  # sent, and ignored by the namespace's init
        elif cid in ("priv_kill_all", "priv_kill_harness"):
            assert host_proc.poll() is None, "a process on the host died"
            if cid == "priv_kill_harness":
                [f] = hs.facts(fetch_log, "kill_harness_hit") or [{"hit": []}]
                assert all(pid < 100 for pid in f["hit"]), f  # only its container's few processes
    finally:
        if host_proc is not None:
            host_proc.kill()
            host_proc.wait()


# ------------------------------------------------------------------------- leakage between runs

def test_hostile_leakage_between_runs(client, profiles, tmp_path):
    """Run A (leak_plant) leaves canaries in its cache, /tmp, /dev/shm and a detached process; run B
    (leak_probe, another submission) sees none of them, and nothing of A runs on the host."""
    runs = {}
    for cid in ("leak_plant", "leak_probe"):
        sub = hs.submission_from_case(cid, tmp_path / cid)
        runs[cid] = hs.aecc(["validate", str(sub), "--encoder", "encoder.py:HostileEncoder", "--profile",
                             str(profiles["small"]), "--max-seconds", "10"], tmp_path / f"run-{cid}", timeout=900)
        hs.assert_verdict(runs[cid].report, hs.case(cid)["expect"], runs[cid].rc)
        assert not hs.marker_processes("HOSTILE-LEAK"), f"{cid}: a planted process outlived its container"
    plant = {k: hs.log_text(v) for k, v in runs["leak_plant"].report["logs"].items()}
    [planted] = hs.facts(plant["fetch"], "leak_plant_import")
    assert planted["/cache/HOSTILE-LEAK-cache"] == "ok" and planted["/tmp/HOSTILE-LEAK-tmp"] == "ok"
    assert planted["/dev/shm/HOSTILE-LEAK-shm"] == "ok"
    probe = {k: hs.log_text(v) for k, v in runs["leak_probe"].report["logs"].items()}
    seen = hs.facts(probe["fetch"], "leak_probe_import") + hs.facts(probe["check"], "leak_probe_import") \
        + hs.facts(probe["check"], "leak_probe_forward")
    assert len(seen) == 3
    for f in seen:
        assert f["files"] == [] and f["procs"] == [], f


# ------------------------------------------------------------------------------- the zoo: score

@pytest.fixture(scope="session")
def score_env(tmp_path_factory) -> Path:
    """tiny_tones with a canary in every label (as tests/harness/pipelines/test_score.py does)."""
    from harness import demodata as taskgen

    root = tmp_path_factory.mktemp("xares-env")
    taskgen.generate(root, ["tiny_tones"], seed=0)
    for shard in sorted((root / "tiny_tones").glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tar:
            for m, payload in members:
                if m.name.endswith(".json"):
                    label = json.loads(payload)
                    label["note"] = hs.LABEL_CANARY
                    payload = json.dumps(label).encode()
                m.size = len(payload)
                tar.addfile(m, __import__("io").BytesIO(payload))
    os.system(f"chmod -R a+rX {root}")
    return root


def _score(cid, zoo, env, profiles, out, monkeypatch) -> tuple[dict | None, BaseException | None, list]:
    from harness import paths
    from harness.bulk.run import score_path
    from harness.pipelines.score import ScoreSettings
    from harness.sandbox import engine
    from harness.tasks.arguments import resolve_tasks
    from tests.support.runs import record_runs

    # The zoo's cases share one submission sha, and the harness keeps finished embeddings per
    # (sha, task) (`runs/<sha>/<task>/encode.ok`), whatever --encoder names: start each case afresh.
    shutil.rmtree(paths.home() / "runs", ignore_errors=True)

    seen = record_runs(monkeypatch)
    settings = ScoreSettings(data=env, tasks=resolve_tasks([str(hs.REPO / "demo_tasks" / "tiny_tones_task.py")]),
                             repeats=1)
    box: dict = {}

    def work():
        try:
            box["result"] = score_path(engine.connect(), zoo, settings=settings, out=out,
                                       encoder=f"{cid}.py:HostileEncoder", profile=str(profiles["score"])).to_dict()
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=900)
    assert not worker.is_alive(), "the harness hung on this submission's output"
    return box.get("result"), box.get("error"), seen


SCORE_IDS = sorted(hs.cases_by_drive("score-zoo"), key=lambda c: c != "baseline")


@pytest.mark.parametrize("cid", SCORE_IDS)
def test_hostile_encoder_score(cid, client, zoo, score_env, profiles, aecc_home, tmp_path, monkeypatch):
    exp = hs.case(cid)
    result, error, seen = _score(cid, zoo, score_env, profiles, tmp_path / "out", monkeypatch)
    assert error is None, repr(error)
    RESULTS[cid] = result
    [task] = result["tasks"]
    if not exp.get("gap"):
        assert task["outcome"] == exp["expect"]["task_outcome"], task
        if "reason_contains" in exp["expect"]:
            assert exp["expect"]["reason_contains"] in task["reason"], task["reason"]
    if task["outcome"] == "scored":
        assert task["track_a"] is not None and task["track_b"] is not None
    if exp["expect"].get("equals_baseline"):
        base = RESULTS.get("baseline")
        assert base is not None, "run with the baseline case"
        [b] = base["tasks"]
        assert (task["track_a"], task["track_b"]) == (b["track_a"], b["track_b"])
        assert task["track_a"] != 1.0
    # Nothing secret in any log, result or mount of a submission container.
    sub_runs = [(s, r) for s, r in seen if s.image.startswith("aecc/submission")]
    # The check's container encodes after the host's go (harness.stages.check.check_then_encode).
    assert {s.stage.value for s, _ in sub_runs} >= {"fetch", "check"}
    for spec, run in sub_runs:
        log = run.log_path.read_text(errors="replace")
        assert hs.LABEL_CANARY not in log and hs.KEY_CANARY not in log, (spec.stage, log[-1500:])
        targets = {m.target for m in spec.mounts}
        assert not targets & {"/prepared", "/work", "/keys", "/data"}, targets
        for mount in spec.mounts:
            files = [mount.source] if mount.source.is_file() else [p for p in mount.source.rglob("*")
                                                                   if p.is_file() and not p.is_symlink()]
            for path in files:
                if path.stat().st_size < 64 * 2**20:
                    data = path.read_bytes()
                    assert hs.LABEL_CANARY.encode() not in data and hs.KEY_CANARY.encode() not in data, path
    result_text = json.dumps(result)
    assert hs.KEY_CANARY not in result_text and hs.LABEL_CANARY not in result_text
    encode_logs = "".join(r.log_path.read_text(errors="replace") for s, r in sub_runs
                          if s.stage.value in ("check", "encode"))
    if cid == "secrets_snoop":
        snoops = [f for s, r in sub_runs for f in hs.facts(r.log_path.read_text(errors="replace"), "snoop")]
        assert len(snoops) >= 3, "the snooper ran in fetch, check and encode"
        assert any("/audio/0" in f["mounts"] for f in snoops), "one search ran with the encode's audio mounted"
        for f in snoops:
            assert f["hits"] == {"label": [], "key": []}, f
            assert f["files_read"] > 100
    elif cid == "net_in_encode":
        [f] = hs.facts(encode_logs, "network_encode")
        assert f["ifaces"] == ["lo"] and "ok" not in (f["public"], f["host_docker0"])
        assert not isinstance(f["dns"], list)
    elif cid == "seam_check_to_encode":
        [f] = hs.facts(encode_logs, "seam")
        assert f["ctl_write"] in (30, 13), f  # EROFS (read-only mount) or EACCES
        assert (f["audio_before_go"], f["forged"], f["audio_after_go"]) == (False, "written", True), f
        assert "FORGED-AFTER-GO" not in result_text, "the host read the report after its decision"
        checks = (tmp_path / "out" / result["submission"]["sha256"] / "check.json").read_text()
        assert "FORGED-AFTER-GO" not in checks
    elif cid == "out_hardlink":
        [f] = hs.facts(encode_logs, "hardlink")
        assert f["to_audio"] == 18 and f["to_passwd"] in (1, 18)  # EXDEV / EPERM: other mounts
    elif cid == "out_huge":
        [run_root] = (aecc_home / "runs").glob(result["submission"]["sha256"] + "-*")
        embeddings = run_root / "tiny_tones" / "embeddings"
        size = sum(p.stat().st_size for p in embeddings.rglob("*") if p.is_file() and not p.is_symlink())
        assert size < 2 * 1024**3, size  # cap 1 GiB + what it wrote within one 0.5 s poll


# --------------------------------------------------------------------------------- harness gaps

GAPS = [c["id"] for c in hs.all_cases() if c.get("gap")]

# Defined only while some case records a gap: an empty parametrisation would show up as a skip.
if GAPS:

    @pytest.mark.parametrize("cid", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason="harness gap: " + hs.case(c)["gap"]))
                                     for c in GAPS])
    def test_harness_gap(cid):
        """The safe behaviour of each case that currently reveals a harness gap (see docs/THREAT_MODEL.md)."""
        exp = hs.case(cid)
        if cid not in RESULTS:
            pytest.skip("runs after the case's main test, in the same session")
        got = RESULTS[cid]
        if cid == "net_fetch_reaches_host":
            run, accepted = got
            [f] = hs.facts(hs.log_text(run.report["logs"]["fetch"]), "fetch_host")
            assert f["host_docker0"] != "ok" and accepted == 0
        elif cid == "out_hardlink":
            [task] = got["tasks"]
            assert task["outcome"] == "failed" and exp["expect"]["reason_contains"] in task["reason"]
        else:
            run = got[0] if isinstance(got, tuple) else got
            hs.assert_verdict(run.report, exp["expect"], run.rc)
