"""The downloader on its own: the bandwidth cap, rate and Retry-After parsing, a server that ignores
Range, a partial file from another version, a stop request, and backoff that gives up."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from harness.data import layout
from harness.data.download import (
    ChecksumMismatch,
    Expected,
    FetchError,
    FileJob,
    Http,
    Interrupted,
    RateLimiter,
    RetryPolicy,
    parse_rate,
    retry_after,
)
from harness.errors import UsageError
from tests.support.zenodo import ZenodoStandIn

FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05)
DATA = bytes(range(256)) * 1024  # 256 KiB


def _job(tmp_path, server, key="a.bin", data=DATA, record="800001") -> FileJob:
    return FileJob(f"t/{key}", server.file_url(record, key), tmp_path / "t" / key,
                   layout.partial_path(tmp_path / "t", key),
                   Expected(len(data), {"md5": hashlib.md5(data).hexdigest()}))


@pytest.fixture()
def server():
    with ZenodoStandIn() as s:
        s.add_record("800001", {"a.bin": DATA})
        yield s


def test_parse_rate_and_retry_after():
    assert parse_rate("800k") == 800 * 1024 and parse_rate("20M") == 20 * 1024**2 and parse_rate("1.5m/s") == 1572864
    assert parse_rate("500000") == 500000 and parse_rate("2G") == 2 * 1024**3 and parse_rate("64KB") == 65536
    for bad in ("fast", "0", "-5k", ""):
        with pytest.raises(UsageError, match="not a rate"):
            parse_rate(bad)
    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


def test_the_rate_limiter_holds_the_rate():
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(1000.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        limiter.take(500)  # 5000 bytes at 1000 B/s: 5 s, less the burst allowance
    assert 4.0 <= sum(slept) <= 5.0
    RateLimiter(None).take(10**9)  # no cap: no wait
    with pytest.raises(UsageError):
        RateLimiter(0)


def test_the_bandwidth_cap_holds_on_a_real_download(tmp_path, server):
    rate = 128 * 1024
    started = time.monotonic()
    got = Http(retry=FAST, limiter=RateLimiter(rate)).download(_job(tmp_path, server))
    elapsed = time.monotonic() - started
    assert got.received == len(DATA) and (tmp_path / "t" / "a.bin").read_bytes() == DATA
    assert elapsed >= (len(DATA) - 0.25 * rate - 64 * 1024) / rate  # 256 KiB at 128 KiB/s: ~1.5 s at least


def test_a_server_that_ignores_range_is_read_from_the_start(tmp_path):
    with ZenodoStandIn(ignore_range=True) as server:
        server.add_record("800001", {"a.bin": DATA})
        job = _job(tmp_path, server)
        layout.make_dirs(job.part.parent)
        job.part.write_bytes(DATA[:1000])
        got = Http(retry=FAST).download(job)
    assert job.dest.read_bytes() == DATA and got.received == len(DATA)
    assert server.requests[0][2] == "bytes=1000-" and server.requests[0][3] == 200


def test_a_partial_from_another_version_is_downloaded_again_once(tmp_path, server):
    job = _job(tmp_path, server)
    layout.make_dirs(job.part.parent)
    job.part.write_bytes(b"\xff" * 1000)  # not a prefix of this file
    got = Http(retry=FAST).download(job)
    assert job.dest.read_bytes() == DATA
    assert server.ranges("a.bin") == ["bytes=1000-", None]
    assert got.digests.md5 == hashlib.md5(DATA).hexdigest()
    # a file that never matches is refused after that one retry, and removed
    server.corrupt("800001", "a.bin")
    record = server.records["800001"].document(server.base)
    bad = FileJob("t/b.bin", job.url, tmp_path / "t" / "b.bin", layout.partial_path(tmp_path / "t", "b.bin"),
                  Expected(len(DATA), {"md5": record["files"][0]["checksum"][4:]}))
    with pytest.raises(ChecksumMismatch, match="t/b.bin"):
        Http(retry=FAST).download(bad)
    assert not bad.dest.exists() and not bad.part.exists()


def test_a_stop_request_keeps_the_partial_for_later(tmp_path, server):
    stop = threading.Event()
    job = _job(tmp_path, server)

    class StopHalfway:
        def __init__(self):
            self.seen = 0

        def file_started(self, *a):
            pass

        def file_finished(self, *a):
            pass

        def note(self, m):
            pass

        def file_advanced(self, label, n):
            self.seen += n
            if self.seen >= len(DATA) // 2:
                stop.set()

    with pytest.raises(Interrupted, match="resumes"):
        Http(retry=FAST, stop=stop, limiter=RateLimiter(512 * 1024)).download(job, StopHalfway())
    assert 0 < job.part.stat().st_size < len(DATA) and not job.dest.exists()
    got = Http(retry=FAST).download(job)
    assert got.resumed_from == job.dest.stat().st_size - got.received and job.dest.read_bytes() == DATA


def test_backoff_gives_up_with_what_to_do(tmp_path):
    job = FileJob("t/a.bin", "http://127.0.0.1:9/nothing-listens-here", tmp_path / "a", tmp_path / "a.part",
                  Expected(10, {"md5": "0" * 32}))
    with pytest.raises(FetchError) as info:
        Http(retry=FAST, timeout_s=2).download(job)
    text = info.value.render()
    assert "gave up after 3 attempts" in text and "resumes" in text and "ConnectionRefusedError" in text
