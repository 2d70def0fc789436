"""Record ids come from X-ARES's own task modules (read with ast, never imported), and Zenodo's record JSON
is read in both its forms; restricted, missing and malformed records are named as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.download import FetchError, Http, RetryPolicy
from harness.data.records import (
    Availability,
    RecordMissing,
    RecordRestricted,
    parse_checksum,
    parse_record,
    plan_tasks,
    read_record,
    read_task_facts,
)
from harness.errors import UsageError
from harness.tasks.registry import load_registry
from tests.support.zenodo import ZenodoStandIn

FAST = RetryPolicy(attempts=2, base_s=0.01, max_s=0.02)
MODULE = '''
from xares.task import TaskConfig

def {stem}_config(encoder) -> TaskConfig:
    class_label_maps = {{"a": 0}}
    return TaskConfig(
        encoder=encoder,
        name="{name}",
        private={private},
        {zenodo}
        output_dim=len(class_label_maps),
    )
'''


def _module(folder: Path, stem: str, name: str, *, zenodo: str | None = None, private: bool = False,
            raw: str | None = None) -> Path:
    line = raw if raw is not None else (f'zenodo_id="{zenodo}",' if zenodo else "")
    path = folder / f"{stem}.py"
    path.write_text(MODULE.format(stem=stem.removesuffix("_task"), name=name, private=private, zenodo=line))
    return path


@pytest.fixture(scope="module")
def xares_tasks(tmp_path_factory) -> Path:
    """A stand-in for X-ARES's tasks/ folder: every registry module, record ids 900000+i, hidden ones private."""
    folder = tmp_path_factory.mktemp("tasks")
    for i, entry in enumerate(load_registry()):
        if entry.xares_module:
            stem = entry.xares_module.rsplit(".", 1)[-1]
            _module(folder, stem, entry.name, zenodo=None if entry.hidden else str(900000 + i),
                    private=entry.hidden)
    return folder


def test_facts_are_read_without_running_the_module(tmp_path):
    facts = read_task_facts(_module(tmp_path, "x_task", "x", zenodo="14614287"))
    assert (facts.name, facts.zenodo_id, facts.private, facts.problem) == ("x", "14614287", False, "")
    facts = read_task_facts(_module(tmp_path, "y_task", "y", raw="zenodo_id=RECORD,"))
    assert facts.zenodo_id is None and "not a literal" in facts.problem
    facts = read_task_facts(_module(tmp_path, "z_task", "z", raw='zenodo_id="../etc",'))
    assert facts.zenodo_id is None and "not a Zenodo record number" in facts.problem
    assert read_task_facts(_module(tmp_path, "p_task", "p", private=True)).private
    (tmp_path / "broken_task.py").write_text("def broken_config(:")
    with pytest.raises(UsageError, match="cannot be read"):
        read_task_facts(tmp_path / "broken_task.py")


def test_a_task_set_is_planned_from_xares_modules(xares_tasks):
    registry = load_registry()
    planned = {t.name: t for t in plan_tasks(task_set="icme2025-final", xares_tasks=xares_tasks)}
    members = [e for e in registry if e.task_sets.get("icme2025-final")]
    assert set(planned) == {e.name for e in members}
    for entry in members:
        task = planned[entry.name]
        if entry.hidden:
            assert task.availability is Availability.PLACE_YOURSELF and "hidden" in task.reason
            assert task.patterns == entry.audio_tar_globs
        else:
            assert task.availability is Availability.ZENODO
            assert task.zenodo_id == str(900000 + registry.entries.index(entry))  # from the module, nowhere else
            assert task.module == entry.xares_module


def test_named_tasks_files_and_unsupported_ones(xares_tasks, tmp_path):
    own = _module(tmp_path, "mine_task", "mine", zenodo="123")
    no_record = _module(tmp_path, "local_task", "local")
    planned = {t.name: t for t in plan_tasks(["esc50", str(own), str(no_record)], xares_tasks=xares_tasks)}
    assert planned["esc50"].availability is Availability.ZENODO
    # a task X-ARES has no module for: refused by name, listed within a set
    with pytest.raises(UsageError, match="no module"):
        plan_tasks(["speechocean762"], xares_tasks=xares_tasks)
    paper = {t.name: t for t in plan_tasks(task_set="paper", xares_tasks=xares_tasks)}
    assert paper["speechocean762"].availability is Availability.NO_MODULE
    assert "no task module" in paper["speechocean762"].reason
    assert planned["mine"].availability is Availability.ZENODO and planned["mine"].zenodo_id == "123"
    assert planned["mine"].module == str(own.resolve())
    assert planned["local"].availability is Availability.PLACE_YOURSELF and "names no Zenodo record" in \
        planned["local"].reason
    layout_text = planned["local"].layout("/data/env")
    assert "/data/env/local/" in layout_text and ".audio_tar_ready, written last" in layout_text
    # task files need no X-ARES folder at all
    assert plan_tasks([str(own)], xares_tasks=lambda: pytest.fail("not needed"))[0].zenodo_id == "123"
    with pytest.raises(UsageError, match="name the tasks"):
        plan_tasks(None, None)
    with pytest.raises(UsageError, match="holds no X-ARES task modules"):
        plan_tasks(["esc50"], xares_tasks=tmp_path / "nothing-here")


def test_record_json_in_both_forms():
    legacy = {"id": 5, "revision": 2, "doi": "10.5281/zenodo.5", "metadata": {"version": "v1", "access_right": "open"},
              "files": [{"key": "a.tar", "size": 3, "checksum": "md5:" + "0" * 32}]}
    record = parse_record(legacy, api="https://z/api", record_id="5")
    assert (record.version, record.revision, record.doi) == ("v1", 2, "10.5281/zenodo.5")
    assert record.files[0].url == "https://z/api/records/5/files/a.tar/content"
    assert record.files[0].checksum == "md5:" + "0" * 32
    rdm = {"id": "5", "access": {"record": "public", "files": "public"}, "metadata": {},
           "files": {"enabled": True, "entries": {"b c.tar": {"key": "b c.tar", "size": 1, "checksum": "f" * 32}}}}
    record = parse_record(rdm, api="https://z/api", record_id="5")
    assert record.files[0].key == "b c.tar" and record.files[0].url.endswith("/files/b%20c.tar/content")
    assert record.version is None and record.files[0].checksums == {"md5": "f" * 32}
    with pytest.raises(RecordRestricted, match="does not give its files out"):
        parse_record({"id": "5", "access": {"record": "public", "files": "restricted"}, "files": []},
                     api="https://z/api", record_id="5")
    with pytest.raises(FetchError, match="another record"):
        parse_record({**legacy, "id": 6}, api="https://z/api", record_id="5")
    with pytest.raises(FetchError, match="is not described"):
        parse_record({**legacy, "files": [{"key": "a", "size": 1}]}, api="https://z/api", record_id="5")
    assert parse_checksum("md5:" + "a" * 32) == ("md5", "a" * 32)
    assert parse_checksum("sha256:" + "b" * 64) == ("sha256", "b" * 64)
    assert parse_checksum("md5:abc") is None and parse_checksum("crc:1") is None and parse_checksum(5) is None


def test_missing_and_restricted_records_through_the_api():
    with ZenodoStandIn() as server:
        server.add_record("700005", {"a.tar": b"x"}, restricted=True)
        server.add_record("700006", {"a.tar": b"x", "b.tar": b"yy"}, form="rdm")
        record = read_record(Http(retry=FAST), server.api, "700006")  # entries from /files
        assert [(f.key, f.size) for f in record.files] == [("a.tar", 1), ("b.tar", 2)]
        assert server.statuses("/api/records/700006") == [200, 200]
        with pytest.raises(RecordMissing, match="does not exist"):
            read_record(Http(retry=FAST), server.api, "404404")
        with pytest.raises(RecordRestricted):
            read_record(Http(retry=FAST), server.api, "700005")
    with pytest.raises(UsageError, match="not an HTTP URL"):
        read_record(Http(retry=FAST), "ftp://example.org", "1")
