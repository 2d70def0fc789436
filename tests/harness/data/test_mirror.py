"""Air-gapped scoring hosts: (1) fetch where the internet is, copy ENV, verify the copy; (2) `--from URL`,
an organizer's own HTTP mirror laid out like ENV (here: the fetched ENV itself behind a web server)."""

from __future__ import annotations

import json


from harness.cli import main
from harness.data import layout
from harness.data.fetch import DataFetchSpec, Outcome, fetch
from harness.data.manifest import read_manifest, verify_env
from tests.harness.data.conftest import FAST, RECORDS, copy_env, shards
from tests.support.zenodo import ZenodoStandIn

def test_copy_then_verify_on_the_scoring_host(env, tmp_path):
    copy = copy_env(env, tmp_path / "scoring-host" / "env")
    assert main(["data", "verify", str(copy)]) == 0
    with open(copy / "tiny_tones" / "train-000000.tar", "r+b") as fh:  # the copy was cut short
        fh.truncate(4096)
    result = verify_env(copy)
    assert [(p.finding.value, p.path) for p in result.problems] == [("truncated", "tiny_tones/train-000000.tar")]


def test_fetch_from_a_mirror(env, tmp_path, tasks, generated, capsys):
    with ZenodoStandIn(static_root=env) as mirror:
        out = tmp_path / "from-mirror"
        code = main(["data", "fetch", "--tasks", *(str(t.module) for t in tasks), "--out", str(out),
                     "--from", mirror.base, "--json"])
        assert code == 0
        document = json.loads(capsys.readouterr().out)
        assert [t["outcome"] for t in document["tasks"]] == ["fetched", "fetched"]
        assert all(t["record"]["source"] == "mirror" for t in document["tasks"])
        # the mirror's record files were read (not the unpacked shards), each once
        assert set(mirror.served_paths) == {"/tiny_tones/manifest.json", "/tiny_esc/manifest.json",
                                            *(f"/tiny_tones/{k}" for k in shards(generated, "tiny_tones")),
                                            "/tiny_esc/tiny_esc.zip"}
    assert verify_env(out).ok
    for task in RECORDS:
        for name, data in shards(generated, task).items():
            assert (out / task / name).read_bytes() == data
        manifest = read_manifest(out / task)
        assert manifest.source_kind == "mirror" and manifest.record.record_id == RECORDS[task]
        assert manifest.content() == read_manifest(env / task).content()


def test_a_mirror_is_held_to_xares_record_and_to_its_checksums(env, tmp_path, tasks):
    # another record under the task's name: refused before any file is read
    manifest = json.loads((env / "tiny_tones" / "manifest.json").read_text())
    manifest["record"]["id"] = "123"
    (env / "tiny_tones" / "manifest.json").write_text(json.dumps(manifest))
    # a shard that is not the bytes its manifest lists
    data = bytearray((env / "tiny_esc" / "tiny_esc.zip").read_bytes())
    data[100] ^= 1
    (env / "tiny_esc" / "tiny_esc.zip").write_bytes(bytes(data))
    with ZenodoStandIn(static_root=env) as mirror:
        report = fetch(DataFetchSpec(out=tmp_path / "out", tasks=tasks, api="http://127.0.0.1:9", mirror=mirror.base,
                                 retry=FAST, timeout_s=10))
        assert "/tiny_tones/train-000000.tar" not in mirror.served_paths
    results = {r.name: r for r in report.results}
    assert results["tiny_tones"].outcome is Outcome.FAILED
    assert "record 123" in results["tiny_tones"].error.found and "700001" in results["tiny_tones"].error.expected
    assert results["tiny_esc"].outcome is Outcome.FAILED and "tiny_esc/tiny_esc.zip" in results["tiny_esc"].detail
    assert not (tmp_path / "out" / "tiny_esc" / layout.MARKER).exists()


def test_a_mirror_without_the_task_says_so(tmp_path, tasks):
    (tmp_path / "empty").mkdir()
    with ZenodoStandIn(static_root=tmp_path / "empty") as mirror:
        report = fetch(DataFetchSpec(out=tmp_path / "out", tasks=tasks, mirror=mirror.base, retry=FAST, timeout_s=10))
    for result in report.results:
        assert result.outcome is Outcome.FAILED and "does not have it" in result.detail
        assert "manifest.json" in result.error.expected
