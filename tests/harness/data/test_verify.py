"""`aecc data verify`: a fetched ENV checked against its manifests; every kind of damage is named with
what was expected, what was found and what to do, and the exit status is 1. A second fetch repairs
exactly the damaged files."""

from __future__ import annotations

import json
import os
from pathlib import Path


from harness.cli import main
from harness.data import layout
from harness.data.fetch import DataFetchSpec, Outcome, fetch
from harness.data.manifest import Finding, TaskState, verify_env, verify_task
from tests.harness.data.conftest import FAST, RECORDS, shards

def _damage(env: Path) -> dict[str, str]:
    tones = env / "tiny_tones"
    os.unlink(tones / "valid-000000.tar")  # missing
    with open(tones / "train-000001.tar", "r+b") as fh:  # truncated (an interrupted copy)
        fh.truncate(1000)
    data = bytearray((tones / "test-000000.tar").read_bytes())  # changed, same size
    data[5000] ^= 0xFF
    (tones / "test-000000.tar").write_bytes(bytes(data))
    (tones / "notes.txt").write_text("left here by hand")  # extra
    esc = env / "tiny_esc"
    with open(esc / "wds-audio-fold-2-000000.tar", "ab") as fh:  # changed, longer (an unpacked file)
        fh.write(b"\0" * 512)
    os.unlink(esc / layout.MARKER)  # no marker
    return {"tiny_tones/valid-000000.tar": "missing", "tiny_tones/train-000001.tar": "truncated",
            "tiny_tones/test-000000.tar": "changed", "tiny_tones/notes.txt": "extra",
            "tiny_esc/wds-audio-fold-2-000000.tar": "changed", f"tiny_esc/{layout.MARKER}": "no_marker"}


def test_a_fetched_env_verifies(env):
    result = verify_env(env)
    assert result.ok and [t.state for t in result.tasks] == [TaskState.READY, TaskState.READY]
    assert [t.task for t in result.tasks] == ["tiny_esc", "tiny_tones"]
    assert all(t.deep for t in result.tasks)
    assert main(["data", "verify", str(env)]) == 0


def test_every_kind_of_damage_is_named(env, capsys):
    expected = _damage(env)
    result = verify_env(env)
    assert not result.ok
    found = {p.path: p.finding.value for p in result.problems}
    assert found == expected
    by_path = {p.path: p for p in result.problems}
    truncated = by_path["tiny_tones/train-000001.tar"]
    assert truncated.found.startswith("1000 bytes (") and "bytes, sha256" in truncated.expected
    assert "aecc data fetch --tasks tiny_tones" in truncated.fix
    changed = by_path["tiny_tones/test-000000.tar"]
    assert "other content" in changed.found and "md5:" in changed.expected
    assert "unpacked from tiny_esc.zip" in by_path["tiny_esc/wds-audio-fold-2-000000.tar"].expected
    assert "remove it" in by_path["tiny_tones/notes.txt"].fix
    # sizes only: the same-size change goes unseen, the rest does not
    quick = {p.path for p in verify_env(env, deep=False).problems}
    assert quick == set(expected) - {"tiny_tones/test-000000.tar"}
    # the command: exit 1, every problem with expected / found / next
    assert main(["data", "verify", str(env)]) == 1
    err = capsys.readouterr().err
    for path, finding in expected.items():
        assert f"{finding}: {path}" in err
    assert err.count("expected:") == len(expected) and err.count("next:") == len(expected)
    assert main(["data", "verify", str(env), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert not document["ok"] and {p["path"] for t in document["tasks"] for p in t["problems"]} == set(expected)


def test_a_second_fetch_repairs_exactly_the_damage(env, zenodo, tasks, generated):
    _damage(env)
    (env / "tiny_tones" / "notes.txt").unlink()  # an extra file is the organizer's to remove
    zenodo.reset_counts()
    report = fetch(DataFetchSpec(out=env, tasks=tasks, api=zenodo.api, retry=FAST, timeout_s=10))
    assert {r.name: r.outcome for r in report.results} == {"tiny_tones": Outcome.FETCHED,
                                                           "tiny_esc": Outcome.FETCHED}
    files = shards(generated, "tiny_tones")
    served = {k: n for (_r, k), n in zenodo.served.items()}
    # missing: whole; truncated: resumed from its 1000 bytes; changed: whole again; nothing else
    assert served == {"valid-000000.tar": len(files["valid-000000.tar"]),
                      "train-000001.tar": len(files["train-000001.tar"]) - 1000,
                      "test-000000.tar": len(files["test-000000.tar"])}
    assert verify_env(env).ok
    for name, data in shards(generated, "tiny_esc").items():
        assert (env / "tiny_esc" / name).read_bytes() == data  # unpacked again from the (unchanged) ZIP


def test_partial_downloads_a_bad_manifest_and_links_are_named(env, tmp_path):
    tones = env / "tiny_tones"
    part = layout.partial_path(tones, "x.tar")
    layout.make_dirs(part.parent)
    part.write_bytes(b"half")
    (tones / "valid-000000.tar").unlink()
    (tmp_path / "elsewhere.tar").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere.tar", tones / "valid-000000.tar")
    found = {p.path: p.finding for p in verify_task(env, "tiny_tones").problems}
    assert found == {f"tiny_tones/{layout.PARTIAL_DIR}/x.tar.part": Finding.PARTIAL,
                     "tiny_tones/valid-000000.tar": Finding.NOT_REGULAR}
    (env / "tiny_esc" / "manifest.json").write_text('{"kind": "something else"}')
    check = verify_task(env, "tiny_esc")
    assert check.state is TaskState.PROBLEMS and check.problems[0].finding is Finding.BAD_MANIFEST
    assert "data-manifest.schema.json" in check.problems[0].expected


def test_named_tasks_are_required_and_hand_placed_ones_are_unmanaged(env, generated):
    missing = verify_env(env, ["tiny_tones", "tiny_crop"])
    assert not missing.ok
    assert [p.finding for p in missing.tasks[1].problems] == [Finding.NO_FOLDER]
    # a hidden task placed by hand: no manifest, marker present -> listed, not a failure
    hand = env / "finger_snap"
    hand.mkdir()
    (hand / "finger_snap_fold00.tar").write_bytes(b"0" * 1024)
    (hand / layout.MARKER).touch()
    check = verify_task(env, "finger_snap")
    assert check.state is TaskState.UNMANAGED and check.ok
    (hand / layout.MARKER).unlink()
    assert verify_task(env, "finger_snap").problems[0].finding is Finding.NO_MARKER


def test_doctor_checks_say_which_tasks_are_ready(env):
    from harness.doctor import Status, data_checks

    (env / "tiny_tones" / "valid-000000.tar").unlink()
    checks = {c.id: c for c in data_checks(env)}
    assert checks["data"].status is Status.FAIL and "1 of 2" in checks["data"].found
    assert checks["data_tiny_esc"].status is Status.OK and "record 700002 version 2.1" in checks["data_tiny_esc"].found
    tones = checks["data_tiny_tones"]
    assert tones.status is Status.FAIL and tones.found.startswith("missing tiny_tones/valid-000000.tar")
    assert "aecc data fetch" in tones.fix
    from harness import schemas

    for c in checks.values():  # the ids follow doctor's schema
        schemas.validate("doctor", {"schema_version": 1, "ok": True, "checks": [c.to_dict()], "engine": None,
                                    "gpus": [], "build_options": {}})
    assert RECORDS  # (the fixture's records)
