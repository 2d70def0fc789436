"""`aecc data fetch` through a local stand-in of Zenodo's records API: two tasks land in X-ARES's layout,
checked file by file; a rerun changes nothing; a kill mid-file resumes without a byte fetched twice; a
cut connection, a 429 with Retry-After, a wrong checksum and a restricted record each end as they must."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import schemas
from harness.data import layout
from harness.data.download import RetryPolicy
from harness.data.fetch import DataFetchSpec, Outcome, fetch
from harness.data.manifest import read_manifest, verify_env
from tests.harness.data.conftest import ESC_ZIP, RECORDS, esc_zip, shards

AECC = str(Path(sys.executable).parent / "aecc")
FAST = RetryPolicy(attempts=4, base_s=0.05, max_s=0.2)


def _spec(env: Path, tasks, api: str, **kw) -> DataFetchSpec:
    return DataFetchSpec(out=env, tasks=tasks, api=api, retry=kw.pop("retry", FAST), timeout_s=kw.pop("timeout_s", 10),
                     **kw)


def _outcomes(report) -> dict[str, Outcome]:
    return {r.name: r.outcome for r in report.results}


def _record_bytes(generated: Path) -> int:
    return sum(len(b) for b in shards(generated, "tiny_tones").values()) + len(esc_zip(generated))


def test_two_tasks_land_in_xares_layout_checked(tmp_path, zenodo, tasks, generated):
    env = tmp_path / "env"
    report = fetch(_spec(env, tasks, zenodo.api))
    assert report.ok and _outcomes(report) == {"tiny_tones": Outcome.FETCHED, "tiny_esc": Outcome.FETCHED}
    # X-ARES's layout: the record's files under the task folder, the marker; shards identical to the generator's
    for task in RECORDS:
        for name, data in shards(generated, task).items():
            assert (env / task / name).read_bytes() == data, name
        assert (env / task / layout.MARKER).is_file()
        assert not (env / task / layout.PARTIAL_DIR).exists()
    assert (env / "tiny_esc" / ESC_ZIP).read_bytes() == esc_zip(generated)  # kept: verify checks it too
    # every file readable by the sandbox user through a bind mount
    for path in (env / "tiny_tones").iterdir():
        assert path.stat().st_mode & 0o444 == 0o444, path
    # the manifest: every file's size, the record's checksum and a sha256, the record's version
    document = json.loads((env / "tiny_tones" / "manifest.json").read_text())
    schemas.validate("data-manifest", document)
    assert document["record"] == {"id": "700001", "version": "1.0", "revision": 3,
                                  "doi": "10.5281/zenodo.700001", "bytes": sum(f["bytes"] for f in document["files"])}
    assert {f["path"] for f in document["files"]} == set(shards(generated, "tiny_tones"))
    assert all(f["checksum"].startswith("md5:") for f in document["files"])
    assert document["xares"]["zenodo_id"] == "700001" and document["source"]["kind"] == "zenodo"
    esc = read_manifest(env / "tiny_esc")
    assert [f.path for f in esc.files] == [ESC_ZIP] and esc.record.version == "2.1"
    assert {u.path for u in esc.unpacked} == set(shards(generated, "tiny_esc"))
    assert all(u.archive == ESC_ZIP for u in esc.unpacked)
    # every byte served once, and only file downloads and record reads were asked for
    assert sum(zenodo.served.values()) == _record_bytes(generated)
    assert verify_env(env).ok
    # what `aecc score --data ENV` checks before it starts
    from harness.tasks.arguments import resolve_tasks
    from harness.tasks.sets import check_data

    demo = Path(__file__).resolve().parents[3] / "demo_tasks"
    assert check_data(resolve_tasks([str(demo / f"{t}_task.py") for t in RECORDS]), env) == []


def test_a_rerun_downloads_and_writes_nothing(tmp_path, zenodo, tasks):
    from harness.stages.prepare import fingerprint

    env = tmp_path / "env"
    assert fetch(_spec(env, tasks, zenodo.api)).ok
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in env.rglob("*")}
    prints = {t: fingerprint(env / t) for t in RECORDS}
    zenodo.reset_counts()
    report = fetch(_spec(env, tasks, zenodo.api))
    assert _outcomes(report) == {"tiny_tones": Outcome.UP_TO_DATE, "tiny_esc": Outcome.UP_TO_DATE}
    assert sum(zenodo.served.values()) == 0
    assert all("/content" not in path for _m, path, _r, _s in zenodo.requests)  # only the two record reads
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in env.rglob("*")} == before
    assert {t: fingerprint(env / t) for t in RECORDS} == prints  # the prepared cache stays valid


def test_killed_mid_file_resumes_and_fetches_no_byte_twice(tmp_path, zenodo, task_files, tasks, generated):
    env = tmp_path / "env"
    key = "train-000000.tar"
    size = len(shards(generated, "tiny_tones")[key])
    zenodo.stall(RECORDS["tiny_tones"], key, after=size // 3)
    cmd = [AECC, "data", "fetch", "--tasks", str(task_files["tiny_tones"]), "--out", str(env), "--zenodo-api",
           zenodo.api, "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    part = layout.partial_path(env / "tiny_tones", key)
    try:
        deadline = time.monotonic() + 120
        while not (part.exists() and part.stat().st_size == size // 3):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the fetch never reached the stalled file"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-file, no chance to clean up
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        zenodo.release()
    assert not (env / "tiny_tones" / layout.MARKER).exists()
    assert not (env / "tiny_tones" / key).exists() and part.stat().st_size == size // 3
    first_run = dict(zenodo.served)

    report = fetch(_spec(env, [t for t in tasks if t.name == "tiny_tones"], zenodo.api))
    assert _outcomes(report) == {"tiny_tones": Outcome.FETCHED}
    files = shards(generated, "tiny_tones")
    for name, data in files.items():
        assert (env / "tiny_tones" / name).read_bytes() == data
    # no byte twice: over both runs, every file's bytes were served exactly once
    assert {k: n for (_r, k), n in zenodo.served.items()} == {k: len(v) for k, v in files.items()}
    assert first_run[(RECORDS["tiny_tones"], key)] == size // 3
    assert f"bytes={size // 3}-" in zenodo.ranges(key)
    # files completed before the kill were not asked for again
    completed_before = {k for (_r, k) in first_run} - {key}
    for name in completed_before:
        assert zenodo.ranges(name).count(None) == 1
    assert verify_env(env, ["tiny_tones"]).ok


def test_a_connection_cut_mid_file_is_resumed_with_range(tmp_path, zenodo, tasks, generated):
    env = tmp_path / "env"
    key = "test-000000.tar"
    size = len(shards(generated, "tiny_tones")[key])
    zenodo.cut(RECORDS["tiny_tones"], key, after=size // 2)
    notes = []

    class Notes:
        def __getattr__(self, name):
            return lambda *a: None

        def note(self, message):
            notes.append(message)

    report = fetch(_spec(env, tasks, zenodo.api), Notes())
    assert report.ok
    assert (env / "tiny_tones" / key).read_bytes() == shards(generated, "tiny_tones")[key]
    assert zenodo.served[(RECORDS["tiny_tones"], key)] == size  # the first half once, the rest once
    assert zenodo.ranges(key) == [None, f"bytes={size // 2}-"]
    assert any(f"closed at byte {size // 2}" in n for n in notes), notes


def test_429_with_retry_after_is_honoured(tmp_path, zenodo, tasks):
    env = tmp_path / "env"
    zenodo.throttle(times=1, retry_after=2, path_contains="/api/records/700001")
    started = time.monotonic()
    report = fetch(_spec(env, tasks, zenodo.api, retry=RetryPolicy(attempts=3, base_s=0.01, max_s=0.05)))
    assert report.ok
    assert time.monotonic() - started >= 2.0  # the server's wait, not the (tiny) backoff
    assert zenodo.statuses("/api/records/700001")[:2] == [429, 200]
    # a ban longer than the policy accepts is reported, not slept through
    zenodo.throttle(times=1, retry_after=3600, path_contains="/api/records/700002")
    report = fetch(_spec(tmp_path / "env2", tasks, zenodo.api))
    failed = {r.name: r for r in report.results}["tiny_esc"]
    assert failed.outcome is Outcome.FAILED and "wait 3600 s" in failed.error.render()


def test_a_wrong_checksum_is_refused_naming_the_file(tmp_path, zenodo, tasks):
    env = tmp_path / "env"
    key = "valid-000000.tar"
    zenodo.corrupt(RECORDS["tiny_tones"], key)
    report = fetch(_spec(env, tasks, zenodo.api))
    assert not report.ok
    results = {r.name: r for r in report.results}
    assert results["tiny_esc"].outcome is Outcome.FETCHED  # the other task goes on
    bad = results["tiny_tones"]
    assert bad.outcome is Outcome.FAILED
    text = bad.error.render()
    assert f"tiny_tones/{key}" in text and "checksum" in text
    assert "expected: md5:" in text and "found:    md5:" in text and "next:" in text
    assert not (env / "tiny_tones" / layout.MARKER).exists()
    assert not (env / "tiny_tones" / "manifest.json").exists()
    assert not (env / "tiny_tones" / key).exists()  # not left under its name
    assert not layout.partial_path(env / "tiny_tones", key).exists()
    # the CLI says so, and exits 2
    from harness.cli import main

    assert main(["data", "fetch", "--tasks", str(tasks[0].module), "--out", str(env), "--zenodo-api",
                 zenodo.api]) == 2


def test_a_restricted_record_is_left_to_the_organizer(tmp_path, generated, task_files):
    from harness.data.records import plan_tasks
    from tests.support.zenodo import ZenodoStandIn

    with ZenodoStandIn() as server:
        server.add_record(RECORDS["tiny_tones"], shards(generated, "tiny_tones"), restricted=True)
        tasks = plan_tasks([str(task_files["tiny_tones"])])
        report = fetch(_spec(tmp_path / "env", tasks, server.api))
        assert server.statuses("/content") == []  # the API says so in the record (its files answer 403)
        # once the organizer has placed it (marker written last), the fetch says so and leaves it alone
        placed = tmp_path / "env" / "tiny_tones"
        placed.mkdir(parents=True)
        (placed / "train-000000.tar").write_bytes(b"placed by hand")
        (placed / layout.MARKER).touch()
        (again,) = fetch(_spec(tmp_path / "env", tasks, server.api)).results
        assert again.outcome is Outcome.PLACED and "placed by hand" in again.detail
        assert (placed / "train-000000.tar").read_bytes() == b"placed by hand"
        (placed / layout.MARKER).unlink()
    (result,) = report.results
    assert result.outcome is Outcome.PLACE_YOURSELF and "does not give its files out" in result.detail
    assert "access_right is 'restricted'" in result.error.found
    assert not (tmp_path / "env" / "tiny_tones" / layout.MARKER).exists()
    assert "tiny_tones/" in result.task.layout(tmp_path / "env") and layout.MARKER in result.task.layout("ENV")


def test_a_file_a_restricted_record_refuses_with_403(tmp_path, generated):
    from harness.data.download import FileJob, Http, HttpRefused
    from harness.data.records import RecordFile
    from tests.support.zenodo import ZenodoStandIn

    with ZenodoStandIn() as server:
        server.add_record("700009", {"a.tar": b"x" * 10}, restricted=True)
        f = RecordFile("a.tar", 10, {"md5": "0" * 32}, server.file_url("700009", "a.tar"))
        job = FileJob("t/a.tar", f.url, tmp_path / "a.tar", tmp_path / ".part", f.expected())
        with pytest.raises(HttpRefused) as info:
            Http(retry=FAST).download(job)
    assert info.value.status == 403 and "403" in info.value.render()


def test_two_tasks_sharing_a_record_download_it_once(tmp_path, zenodo, task_files, generated):
    """X-ARES's librispeech and librispeechmalefemale name the same record: one download, two folders."""
    from harness.data.records import plan_tasks

    twin = tmp_path / "tiny_twin_task.py"
    twin.write_text(task_files["tiny_tones"].read_text().replace('name="tiny_tones"', 'name="tiny_twin"')
                    .replace("def tiny_tones_config", "def tiny_twin_config"))
    tasks = plan_tasks([str(task_files["tiny_tones"]), str(twin)])
    assert [t.zenodo_id for t in tasks] == ["700001", "700001"]
    env = tmp_path / "env"
    report = fetch(_spec(env, tasks, zenodo.api))
    assert _outcomes(report) == {"tiny_tones": Outcome.FETCHED, "tiny_twin": Outcome.FETCHED}
    files = shards(generated, "tiny_tones")
    assert {k: n for (_r, k), n in zenodo.served.items()} == {k: len(v) for k, v in files.items()}
    for name, data in files.items():
        assert (env / "tiny_twin" / name).read_bytes() == data
    assert "linked from a task sharing the record" in {r.name: r for r in report.results}["tiny_twin"].detail
    assert verify_env(env).ok


def test_a_rerun_in_a_new_process_reads_no_file_again(tmp_path, zenodo, tasks, monkeypatch):
    env = tmp_path / "env"
    assert fetch(_spec(env, tasks, zenodo.api)).ok
    layout._CACHE.clear()  # as in a new process: only the machine's digest cache remains
    layout._DISK = None

    def no_hashing(*a, **k):
        raise AssertionError("a file was read again")

    monkeypatch.setattr(layout, "_read", no_hashing)
    report = fetch(_spec(env, tasks, zenodo.api))
    assert {r.outcome for r in report.results} == {Outcome.UP_TO_DATE}
    # ...but verify reads every file itself
    with pytest.raises(AssertionError, match="read again"):
        verify_env(env)
    monkeypatch.undo()
    assert verify_env(env).ok
