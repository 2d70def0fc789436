"""A lock is exactly what a build installed: it is made from pip's report (name, version, archive
sha256), reads back to the same set, its digest ignores when it was made, a damaged lock is an error
rather than a silent re-resolution, and the locks committed for the runtime chain are still keyed to
the layers the repository defines (a change to a recipe, its constraints or lib.sh must come with
fresh locks: `aecc images lock`)."""

from __future__ import annotations

import dataclasses

import pytest

from harness.errors import ImageBuildError
from harness.layers import lock as lock_store
from harness.layers.build import committed_lock_path
from harness.layers.lock import Lock
from harness.layers.model import base_layer, lock_key, runtime_deps_layer, torch_layer

REPORT = {"version": "1", "install": [
    {"metadata": {"name": "torchcrepe", "version": "0.0.24"},
     "download_info": {"archive_info": {"hashes": {"sha256": "e" * 64}}}},
    {"metadata": {"name": "Resampy", "version": "0.4.3"},
     "download_info": {"archive_info": {"hashes": {"sha256": "a" * 64}}}},
]}


def test_report_to_lock_and_back():
    lock = Lock.from_report(REPORT, layer="submission-x", lock_key="k" * 64, resolve_before="2025-04-30T23:59:59Z")
    text = lock.text()
    assert "Resampy==0.4.3 --hash=sha256:" + "a" * 64 in text.splitlines()
    again = Lock.parse(text)
    assert again == lock
    assert again.versions() == {"torchcrepe": "0.0.24", "resampy": "0.4.3"}


def test_the_digest_is_the_package_set_not_the_moment():
    lock = Lock.from_report(REPORT, layer="a", lock_key="1" * 64)
    later = dataclasses.replace(lock, resolved_at="2030-01-01T00:00:00Z", layer="b")
    assert later.digest == lock.digest
    other = Lock.from_report({"install": REPORT["install"][:1]}, layer="a", lock_key="1" * 64)
    assert other.digest != lock.digest


def test_a_package_without_an_archive_hash_cannot_be_locked():
    with pytest.raises(ImageBuildError, match="without an archive hash"):
        Lock.from_report({"install": [{"metadata": {"name": "x", "version": "1"}, "download_info": {"dir_info": {}}}]},
                         layer="a", lock_key="1" * 64)


def test_a_damaged_lock_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text("# aecc-lock v1\n# layer: a\n# lock-key: k\n# resolved-at: t\nnumpy>=1\n")
    with pytest.raises(ImageBuildError, match="damaged"):
        lock_store.load(path)
    assert lock_store.load(tmp_path / "absent.lock") is None


@pytest.mark.parametrize("layer", [torch_layer(), runtime_deps_layer()], ids=lambda l: l.name)
def test_committed_runtime_locks_match_the_layers(layer):
    lock = lock_store.load(committed_lock_path(layer))
    assert lock is not None, f"no committed lock for {layer.name}: run `aecc images lock`"
    assert lock.lock_key == lock_key(layer), (
        f"{committed_lock_path(layer).name} was made for another recipe, constraints or lib.sh: rebuild and run "
        "`aecc images lock` so a fresh machine installs what the suite was run on")
    assert lock.packages


def test_lock_keys_leave_the_root_out_but_follow_everything_else():
    assert lock_key(torch_layer()) == lock_key(torch_layer())
    assert lock_key(torch_layer("2.10.0")) != lock_key(torch_layer())
    assert lock_key(base_layer()) != lock_key(torch_layer())
