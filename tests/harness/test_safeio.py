"""The harness's one atomic write and one file hash (`harness.safeio`): a write replaces the whole file
or nothing, with exactly the mode asked for, and leaves no temporary file behind even when it fails;
a file hashes the same by path and through a file the caller opened."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from harness import safeio


def test_write_atomic_replaces_the_file_with_exactly_the_mode_asked(tmp_path):
    target = tmp_path / "sub" / "file.json"
    safeio.write_atomic(target, "first")
    safeio.write_atomic(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    safeio.write_atomic(target, "third", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "file.json"
    safeio.write_atomic(target, "old")

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        safeio.write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


def test_sha256_file_by_path_and_by_open_file(tmp_path):
    data = os.urandom(3 * safeio.HASH_CHUNK + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert safeio.sha256_file(path) == safeio.sha256_file(str(path)) == expected
    with open(path, "rb") as fh:
        assert safeio.sha256_file(fh) == expected
        assert not fh.closed
