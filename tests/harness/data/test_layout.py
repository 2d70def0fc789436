"""Nothing lands outside its task folder: a record's file names and any ZIP it holds pass intake's own
archive rules (the same functions, not a copy), and a refused record leaves no marker."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from pathlib import Path

import pytest

from harness.data import layout
from harness.data.download import RetryPolicy
from harness.data.fetch import DataFetchSpec, Outcome, fetch
from harness.data.records import plan_tasks
from tests.harness.data.conftest import RECORDS, shards
from tests.support.zenodo import ZenodoStandIn

FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05)


def _zip(entries: list[tuple[str, bytes]], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
        if symlink:
            info = zipfile.ZipInfo(symlink, date_time=(2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _fetch_record(tmp_path: Path, task_files, files: dict[str, bytes]):
    with ZenodoStandIn() as server:
        server.add_record(RECORDS["tiny_tones"], files)
        report = fetch(DataFetchSpec(out=tmp_path / "env", tasks=plan_tasks([str(task_files["tiny_tones"])]),
                                 api=server.api, retry=FAST, timeout_s=10))
        content_requests = server.statuses("/content")
    (result,) = report.results
    return result, content_requests


def _outside(tmp_path: Path) -> list[Path]:
    env = tmp_path / "env"
    return [p for p in tmp_path.rglob("*") if env not in p.parents and p != env]


def test_the_rules_are_intakes_own():
    from harness.stages import intake

    rules = layout._intake_rules()
    assert rules is intake
    for name in ("name_problem", "collisions", "open_zip", "scan_zip", "extract_zip", "escape_name"):
        assert callable(getattr(intake, name)), name


@pytest.mark.parametrize("key, reason", [
    ("../outside.tar", "parent_traversal"),
    ("/etc/cron.d/x", "absolute_path"),
    ("C:/x.tar", "drive_letter"),
    ("a\\b.tar", "backslash"),
    ("bad\x1b[31m.tar", "control_char"),
    ("manifest.json", "may not be called"),
    (".audio_tar_ready", "may not be called"),
    ("embeddings/x.tar", "may not be called"),
])
def test_unsafe_record_names_are_refused_before_any_download(tmp_path, task_files, key, reason):
    result, content_requests = _fetch_record(tmp_path, task_files, {"ok.tar": b"x" * 100, key: b"y" * 100})
    assert result.outcome is Outcome.FAILED and reason in result.error.found
    assert content_requests == []
    assert not (tmp_path / "env" / "tiny_tones" / layout.MARKER).exists()
    assert _outside(tmp_path) == []


def test_names_that_collide_after_case_folding_are_refused(tmp_path, task_files):
    result, _ = _fetch_record(tmp_path, task_files, {"Train.tar": b"x", "train.tar": b"y"})
    assert result.outcome is Outcome.FAILED and "duplicate_name" in result.error.found


@pytest.mark.parametrize("archive, reason", [
    (_zip([("ok.tar", b"x"), ("../../escaped.tar", b"y")]), "parent_traversal"),
    (_zip([("ok.tar", b"x")], symlink="link.tar"), "symlink"),
    (_zip([("big.tar", b"\0" * (20 * 1024**2))]), "ratio_exceeded"),
    (_zip([("manifest.json", b"{}")]), "harness uses"),
    (b"PK\x03\x04 this is not a zip", "truncated"),
])
def test_a_zip_in_the_record_passes_intakes_archive_rules(tmp_path, task_files, archive, reason):
    result, _ = _fetch_record(tmp_path, task_files, {"data.zip": archive})
    assert result.outcome is Outcome.FAILED, result
    assert reason in (result.error.summary + result.error.found)
    folder = tmp_path / "env" / "tiny_tones"
    assert not (folder / layout.MARKER).exists() and not (folder / "manifest.json").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["data.zip"]  # nothing unpacked, staging removed
    assert _outside(tmp_path) == []


def test_a_zip_may_not_overwrite_a_record_file(tmp_path, task_files):
    result, _ = _fetch_record(tmp_path, task_files, {"a.tar": b"record", "data.zip": _zip([("a.tar", b"other")])})
    assert result.outcome is Outcome.FAILED and "would overwrite a.tar" in result.error.summary
    assert (tmp_path / "env" / "tiny_tones" / "a.tar").read_bytes() == b"record"


def test_a_zip_with_folders_is_unpacked_as_unzip_would(tmp_path, task_files, generated):
    tars = shards(generated, "tiny_tones")
    archive = _zip([(f"sub/{k}", v) for k, v in tars.items()] + [("top.tar", b"t" * 10)])
    result, _ = _fetch_record(tmp_path, task_files, {"data.zip": archive})
    assert result.outcome is Outcome.FETCHED
    folder = tmp_path / "env" / "tiny_tones"
    for k, v in tars.items():
        assert (folder / "sub" / k).read_bytes() == v
        assert stat.S_IMODE((folder / "sub" / k).stat().st_mode) == 0o644
    assert stat.S_IMODE((folder / "sub").stat().st_mode) == 0o755
    assert hashlib.sha256((folder / "top.tar").read_bytes()).hexdigest() == hashlib.sha256(b"t" * 10).hexdigest()


def test_nothing_is_written_through_a_link_in_the_task_folder(tmp_path, task_files):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "env" / "tiny_tones"
    folder.mkdir(parents=True)
    (folder / "sub").symlink_to(outside)
    result, requests = _fetch_record(tmp_path, task_files, {"sub/a.tar": b"x" * 10})
    assert result.outcome is Outcome.FAILED and "symbolic link" in result.error.found and requests == []
    assert list(outside.iterdir()) == []


def test_a_manifest_with_unsafe_paths_is_refused(tmp_path):
    import json

    from harness.data.manifest import ManifestInvalid, TaskManifest

    document = {"schema_version": 1, "kind": "aecc-task-data", "task": "t", "xares": {"module": None,
                "zenodo_id": None}, "record": {"id": "1", "version": None, "revision": None, "doi": None, "bytes": 1},
                "source": {"kind": "mirror", "url": "http://m"}, "fetched_at": "now", "marker": ".audio_tar_ready",
                "files": [{"path": "../../etc/passwd", "bytes": 1, "checksum": "md5:" + "0" * 32,
                           "sha256": "0" * 64}], "unpacked": []}
    with pytest.raises(ManifestInvalid, match="not safe"):
        TaskManifest.from_dict(json.loads(json.dumps(document)))


def test_a_task_name_must_be_a_folder_name(tmp_path):
    from harness.data.records import read_task_facts
    from harness.errors import UsageError

    module = tmp_path / "evil_task.py"
    module.write_text('from xares.task import TaskConfig\n\ndef evil_config(encoder):\n'
                      '    return TaskConfig(name="../../evil", zenodo_id="1")\n')
    assert read_task_facts(module).name == "../../evil"
    with pytest.raises(UsageError, match="cannot be a folder under ENV"):
        plan_tasks([str(module)])
