"""The journal loses nothing and invents nothing: every event appended is on disk when `append`
returns, a line torn by a kill is ignored (and its writer's file never appended to again), a stage
done under a key stays done through a later crash of a rerun, several writers merge into one
state, and a lease is held by one process at a time, renewed by its owner and taken over only once
it has expired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from harness.journal import (
    EventKind,
    Journal,
    Leases,
    StageState,
    SubmissionState,
    read_events,
    reduce,
)

SHA = "a" * 64


def test_events_survive_a_kill_and_a_torn_line_is_ignored(tmp_path):
    code = f"""
import os, signal
from harness.journal import Journal, StageState
j = Journal({str(tmp_path)!r})
j.stage({SHA!r}, "build", StageState.DONE, key="k1", image="img")
# half a line, as a kill in the middle of a write would leave it
os.write(j.writer._fd, b'{{"kind": "stage", "ts": "9999')
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd())
    assert proc.returncode == -9
    state = Journal(tmp_path).state()
    record = state.submissions[SHA]
    assert record.done("build", key="k1").data["image"] == "img"
    assert len(list((tmp_path / "journal").glob("events-*.jsonl"))) == 2  # the reader opened a file of its own


def test_a_completion_outlives_a_crashed_rerun_under_the_same_key(tmp_path):
    j = Journal(tmp_path)
    j.stage(SHA, "score", StageState.DONE, task="esc50", key="k", result={"track_a": 0.5})
    j.stage(SHA, "score", StageState.RUNNING, task="esc50", key="k")
    j.stage(SHA, "score", StageState.ERROR, task="esc50", key="k", reason="engine gone")
    record = j.state().submissions[SHA]
    assert record.done("score", task="esc50", key="k").data["result"] == {"track_a": 0.5}
    # Under a new key (an upgrade, --rescore), the old completion no longer counts.
    j.stage(SHA, "score", StageState.RUNNING, task="esc50", key="k2")
    record = j.state().submissions[SHA]
    assert record.done("score", task="esc50", key="k") is None and record.done("score", task="esc50") is None


def test_writers_merge_and_duplicates_reduce_to_one(tmp_path):
    a, b = Journal(tmp_path), Journal(tmp_path)
    a.append(EventKind.ARRIVAL, sha256=SHA, data={"source": "x.zip", "file_name": "x.zip"})
    b.append(EventKind.ARRIVAL, sha256=SHA, data={"source": "x.zip", "file_name": "x.zip"})
    b.append(EventKind.ARRIVAL, sha256=SHA, data={"source": "mail#2", "file_name": "x-resent.zip"})
    a.submission(SHA, SubmissionState.DONE)
    state = Journal(tmp_path).state()
    assert [x["source"] for x in state.submissions[SHA].arrivals] == ["x.zip", "mail#2"]
    assert state.submissions[SHA].state is SubmissionState.DONE
    lines = sum(len(p.read_text().splitlines()) for p in (tmp_path / "journal").glob("events-*.jsonl"))
    assert lines == 4 and len(read_events(tmp_path)) == 4


def test_unknown_lines_are_skipped_not_guessed(tmp_path):
    j = Journal(tmp_path)
    j.submission(SHA, SubmissionState.QUEUED)
    with open(j.writer.path, "a") as fh:
        fh.write(json.dumps({"kind": "from-the-future", "ts": "1"}) + "\n")
    assert reduce(read_events(tmp_path)).submissions[SHA].state is SubmissionState.QUEUED


def test_a_lease_is_held_by_one_owner_until_it_expires(tmp_path):
    first, second = Leases(tmp_path, "first", ttl_s=0.6), Leases(tmp_path, "second", ttl_s=0.6)
    assert first.acquire(SHA)
    assert not second.acquire(SHA)
    first.renew()
    assert not second.acquire(SHA)
    time.sleep(0.8)  # the first owner died: its lease expires
    assert second.acquire(SHA)
    first.renew()  # a late heartbeat of the old owner must not take it back
    assert second.holder(SHA)["owner"] == "second" and SHA not in first.held()
    second.release(SHA)
    assert second.holder(SHA) is None
    assert first.acquire(SHA)


def test_only_one_of_two_racing_processes_takes_an_expired_lease(tmp_path):
    stale = Leases(tmp_path, "dead", ttl_s=0.01)
    assert stale.acquire(SHA)
    time.sleep(0.05)
    # Each racer stays alive until every one has tried: a winner that had exited would rightly be
    # taken over as a dead holder, which is another test's case.
    code = f"""
import sys
from harness.journal import Leases
print(Leases({str(tmp_path)!r}, sys.argv[1], ttl_s=30).acquire({SHA!r}), flush=True)
sys.stdin.read()
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, f"racer{i}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for i in range(6)]
    try:
        wins = [p.stdout.readline().strip() for p in procs]
    finally:
        for p in procs:
            p.communicate(timeout=30)
    assert wins.count("True") == 1, wins


def test_the_lease_of_a_killed_process_on_this_host_is_taken_at_once(tmp_path):
    code = f"""
import os, signal
from harness.journal import Leases
assert Leases({str(tmp_path)!r}, "killed", ttl_s=3600).acquire({SHA!r})
os.kill(os.getpid(), signal.SIGKILL)
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    successor = Leases(tmp_path, "successor", ttl_s=3600)
    assert successor.holder(SHA)["owner"] == "killed"
    assert successor.acquire(SHA), "a dead holder on this host does not make the rerun wait an hour"
