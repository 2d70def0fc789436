"""Two generated tasks, held as Zenodo records would hold them, behind a local stand-in of Zenodo's API.

`tiny_tones` (record 700001) is held as its four tar shards, one record file each, as X-ARES's real
records hold theirs; `tiny_esc` (record 700002) as one ZIP of its three shards, so that unpacking
with intake's rules is exercised. Their task modules are the demo modules with a `zenodo_id` added:
the record id is read from the module, as from X-ARES's own.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from harness import demodata
from harness.data.download import RetryPolicy
from harness.data.fetch import DataFetchSpec, fetch
from tests.support.zenodo import ZenodoStandIn

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "demo_tasks"
RECORDS = {"tiny_tones": "700001", "tiny_esc": "700002"}
ESC_ZIP = "tiny_esc.zip"


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """The two tasks written directly by the generator (the reference)."""
    root = tmp_path_factory.mktemp("generated-env")
    demodata.generate(root, list(RECORDS), seed=0)
    return root


def shards(generated: Path, task: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((generated / task).glob("*.tar"))}


def esc_zip(generated: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in shards(generated, "tiny_esc").items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same bytes every time
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def task_files(tmp_path_factory) -> dict[str, Path]:
    """The demo task modules, each naming its stand-in record (`zenodo_id=...`)."""
    folder = tmp_path_factory.mktemp("task-modules")
    out = {}
    for task, record in RECORDS.items():
        text = (DEMO / f"{task}_task.py").read_text()
        assert "zenodo_id=None" in text
        (folder / f"{task}_task.py").write_text(text.replace("zenodo_id=None", f'zenodo_id="{record}"'))
        out[task] = folder / f"{task}_task.py"
    return out


@pytest.fixture()
def zenodo(generated):
    with ZenodoStandIn() as server:
        server.add_record(RECORDS["tiny_tones"], shards(generated, "tiny_tones"), version="1.0")
        server.add_record(RECORDS["tiny_esc"], {ESC_ZIP: esc_zip(generated)}, version="2.1")
        yield server


@pytest.fixture()
def tasks(task_files):
    from harness.data.records import plan_tasks

    return plan_tasks([str(task_files["tiny_tones"]), str(task_files["tiny_esc"])])


#: retries quick enough for the stand-in's 429s and cuts
FAST = RetryPolicy(attempts=3, base_s=0.05, max_s=0.1)


@pytest.fixture()
def env(tmp_path, zenodo, tasks) -> Path:
    """The two stand-in tasks fetched into a fresh ENV."""
    root = tmp_path / "env"
    assert fetch(DataFetchSpec(out=root, tasks=tasks, api=zenodo.api, retry=FAST, timeout_s=10)).ok
    return root


def copy_env(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target
