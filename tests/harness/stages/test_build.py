"""The same ZIP builds to the same image on any day (issue 9), proven against a package index on the
host that drifts the way PyPI did on 2026-11-28, with no public index involved:

- the index serves a newer torchaudio (2.11.1, `torch>=2.11`) beside the one made for torch 2.11.0;
  the build still installs the one the companion table names;
- after the first build an ordinary dependency gets a newer release; a rebuild of the pruned image
  installs the locked version, hash-checked, while a build without the lock would take the new one
  (so the test would notice a lock that did nothing);
- `--resolve-before` ignores what was uploaded after the instant, and an index that serves no
  upload times is refused with a message that says so plainly.
"""

from __future__ import annotations

import datetime as dt

import pytest

from harness.errors import UsageError
from harness.layers.build import LockSource
from harness.layers.options import BuildOptions, require_upload_times
from harness.stages.build import build_submission
from harness.stages.intake import intake
from tests.support import REPO
from tests.support.index import DOCKER0, LocalIndex

GOOD = REPO / "examples" / "good_encoder"
UTC = dt.timezone.utc
PROBE = "import torchaudio, aecc_drift_dep; print(torchaudio.__version__, aecc_drift_dep.__version__)"


@pytest.fixture()
def index(tmp_path):
    with LocalIndex(tmp_path / "index") as idx:
        idx.add_wheel("torchaudio", "2.11.0", uploaded=dt.datetime(2025, 3, 1, tzinfo=UTC))
        idx.add_wheel("torchaudio", "2.11.1", requires=("torch>=2.11",), uploaded=dt.datetime(2025, 5, 1, tzinfo=UTC))
        idx.add_wheel("aecc-drift-dep", "1.0", uploaded=dt.datetime(2025, 1, 1, tzinfo=UTC))
        idx.add_wheel("pip", "26.3", uploaded=dt.datetime(2026, 11, 2, tzinfo=UTC))  # what the upload-time probe asks
        yield idx


@pytest.fixture()
def submission(tmp_path):
    src = tmp_path / "sub"
    src.mkdir()
    (src / "encoder.py").write_text((GOOD / "encoder.py").read_text() + f"\n# {tmp_path.name}\n")
    (src / "requirements.txt").write_text("torchaudio\naecc-drift-dep\n")
    return intake(src, tmp_path / "store")


def _versions(client, image: str) -> str:
    out = client.containers.run(image, ["python", "-c", PROBE], remove=True, network_mode="none")
    return out.decode().strip()


def _options(index: LocalIndex, **kw) -> BuildOptions:
    return BuildOptions.from_environment(pip_index_url=index.url(), pip_trusted_hosts=(DOCKER0,), **kw)


def _forget(client, image: str) -> None:
    client.images.remove(image, force=True)


def test_companions_hold_and_a_rebuild_installs_the_lock_not_the_newest(client, index, submission):
    options = _options(index)
    first = build_submission(client, submission, options, log=lambda m: None)
    assert first.lock.lock_source is LockSource.RESOLVED
    assert _versions(client, first.image) == "2.11.0 1.0"  # not torchaudio 2.11.1, the newest on the index
    locked = first.lock_path.read_text()
    assert "torchaudio==2.11.0 --hash=sha256:" in locked and "aecc-drift-dep==1.0 --hash=sha256:" in locked

    index.add_wheel("aecc-drift-dep", "1.1")  # the index moves on
    _forget(client, first.image)
    again = build_submission(client, submission, options, log=lambda m: None)
    assert again.image == first.image and again.lock.lock_source is LockSource.STORED
    assert again.lock_digest == first.lock_digest
    assert _versions(client, again.image) == "2.11.0 1.0"

    # Without its lock the same ZIP would now resolve to the new release: the lock is what held.
    _forget(client, again.image)
    first.lock_path.unlink()
    fresh = build_submission(client, submission, options, log=lambda m: None)
    assert fresh.lock.lock_source is LockSource.RESOLVED
    assert _versions(client, fresh.image) == "2.11.0 1.1"
    _forget(client, fresh.image)


def test_resolve_before_ignores_later_uploads(client, index, submission):
    index.add_wheel("aecc-drift-dep", "1.1", uploaded=dt.datetime(2026, 1, 1, tzinfo=UTC))
    options = _options(index, resolve_before="2025-06-01T00:00:00Z")
    require_upload_times(options)  # this index says when each file was uploaded
    frozen = build_submission(client, submission, options, log=lambda m: None)
    assert _versions(client, frozen.image) == "2.11.0 1.0"
    assert "# resolve-before: 2025-06-01T00:00:00Z" in frozen.lock_path.read_text()
    latest = build_submission(client, submission, _options(index), log=lambda m: None)
    assert latest.image != frozen.image, "an instant is an input of the image's tag"
    assert _versions(client, latest.image) == "2.11.0 1.1"
    for image in (frozen.image, latest.image):
        _forget(client, image)


def test_an_index_without_upload_times_is_refused_plainly(client, tmp_path):
    with LocalIndex(tmp_path / "plain", html_only=True) as plain:
        plain.add_wheel("pip", "26.3")
        options = BuildOptions.from_environment(pip_index_url=plain.url(host="127.0.0.1"),
                                                resolve_before="2025-06-01T00:00:00Z")
        with pytest.raises(UsageError) as err:
            require_upload_times(options)
    assert "does not serve upload times" in err.value.summary
    assert "--resolve-before" in err.value.render()

