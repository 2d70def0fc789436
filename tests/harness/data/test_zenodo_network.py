"""Against the real Zenodo (marked `network`, skipped without internet): the API answers X-ARES's ESC-50
record in the form the harness reads, and serves a file with Range. Downloads 64 KiB, nothing more."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from harness.data.download import USER_AGENT, Http, RetryPolicy
from harness.data.records import DEFAULT_ZENODO_API, read_record

pytestmark = pytest.mark.network
#: X-ARES 0.1.3's tasks/esc50_task.py: TaskConfig(zenodo_id="14614287")
ESC50 = "14614287"


@pytest.fixture(scope="module", autouse=True)
def internet():
    try:
        socket.create_connection(("zenodo.org", 443), timeout=5).close()
    except OSError as exc:
        pytest.skip(f"no internet (zenodo.org:443: {exc})")


def test_the_real_api_answers_what_the_harness_reads():
    record = read_record(Http(retry=RetryPolicy(attempts=3, base_s=5, max_s=30), timeout_s=60), DEFAULT_ZENODO_API,
                         ESC50)
    assert record.record_id == ESC50 and record.files
    for f in record.files:
        assert f.size > 0 and set(f.checksums) == {"md5"} and len(f.checksums["md5"]) == 32
        assert f.url == f"{DEFAULT_ZENODO_API}/records/{ESC50}/files/{f.key}/content"
    smallest = min(record.files, key=lambda f: f.size)
    request = urllib.request.Request(smallest.url, headers={"Range": "bytes=0-65535", "User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 206 and resp.headers["Content-Range"].startswith("bytes 0-")
        assert len(resp.read()) == min(65536, smallest.size)
