"""HTTP for task data: resumable, checked, rate-limited downloads that retry politely.

Standard library only (`urllib`), so the host needs nothing beyond the harness's own dependencies,
and proxies (`https_proxy`) and the system's CA bundle (`SSL_CERT_FILE`) work as for any urllib client.

* **Resume.** A file is written to its partial path (`<task>/.aecc-download/<key>.part`) and renamed to
  its name only once its size and checksum match the record. A partial file is continued with
  `Range: bytes=N-`; a server that answers 200 instead of 206 is read from the start (the partial is
  truncated, never appended to). Every received chunk is written with `os.write` before the next is
  read, so a killed process leaves exactly the bytes it received, and a rerun asks for no byte twice.
* **Check.** md5 (the checksum Zenodo publishes) and sha256 are computed while writing (the partial
  prefix is read once on resume). A mismatch removes the file and raises `ChecksumMismatch` naming it;
  where the partial came from an earlier run, the file is downloaded once more from the start first.
* **Retry.** A connection cut, a read timeout, 5xx and 429 are retried with exponential backoff and
  jitter (`RetryPolicy`); `Retry-After` (seconds or an HTTP date) is honoured on 429 and 503 as the
  least wait. A retry that made progress starts the count again, so a flaky but moving download ends.
  401, 403, 404 and 410 are answered at once (`HttpRefused`), never retried.
* **Bandwidth.** One token bucket (`RateLimiter`) shared by every download of a run caps the total rate.
* **Progress.** Through the `Events` protocol; the CLI renders it with rich, the tests count it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import hashlib
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Protocol

from harness import __version__
from harness.data import layout
from harness.errors import InfraError, UsageError

USER_AGENT = f"aecc-harness/{__version__} (task data fetch; +https://github.com/jimbozhang/xares)"
READ_CHUNK = 64 * 1024
#: what a JSON answer (a Zenodo record, a mirror's manifest) may weigh
JSON_CAP = 32 * 1024**2
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REFUSED_STATUSES = frozenset({401, 403, 404, 410})


class FetchError(InfraError):
    """A download failed after its retries; never anyone's fault but the network's or the source's."""


class HttpRefused(FetchError):
    """The server answered 401, 403, 404 or 410: asking again will not help."""

    def __init__(self, summary: str, *, status: int, **kw: Any) -> None:
        self.status = status
        super().__init__(summary, **kw)


class ChecksumMismatch(FetchError):
    """A downloaded file's bytes are not the ones the record describes."""

    def __init__(self, summary: str, *, name: str, **kw: Any) -> None:
        self.name = name
        super().__init__(summary, **kw)


class Interrupted(FetchError):
    """The run was asked to stop; partial files stay for the next run to resume."""


# --------------------------------------------------------------------------------------------------
# Policy


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: `base_s * 2**n` (capped at `max_s`), +-25 % jitter, at least
    what `Retry-After` asks (up to `max_retry_after_s`: a longer ban is reported, not slept through)."""

    attempts: int = 8
    base_s: float = 2.0
    max_s: float = 120.0
    max_retry_after_s: float = 900.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_s < 0 or self.max_s < self.base_s or self.max_retry_after_s < 0:
            raise UsageError("invalid retry policy", expected="attempts >= 1, 0 <= base_s <= max_s",
                             found=repr(self))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        wait = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        wait *= random.uniform(0.75, 1.25)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


class RateLimiter:
    """A token bucket shared by threads: at most `rate` bytes per second over any second or so."""

    def __init__(self, rate: float | None, *, burst_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise UsageError("the bandwidth cap must be positive", expected="bytes per second > 0", found=str(rate))
        self.rate = rate
        self.capacity = max(float(READ_CHUNK), (rate or 0) * burst_s)
        self._tokens = 0.0
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        if self.rate is None or n <= 0:
            return
        with self._lock:  # one waiter at a time keeps the order fair and the total exact
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            debt = -self._tokens
            if debt > 0:
                self._sleep(debt / self.rate)
                self._tokens = 0.0
                self._last = self._clock()


def parse_rate(text: str) -> int:
    """`--limit-rate`: bytes per second, with an optional k/m/g suffix (powers of 1024, as curl/wget).

    Raises:
        UsageError: not a positive number with an optional suffix.
    """
    raw = str(text).strip().lower().removesuffix("/s").removesuffix("b")
    scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(raw[-1:], 1)
    number = raw[:-1] if scale != 1 else raw
    try:
        value = float(number) * scale
    except ValueError:
        value = -1
    if not value > 0:
        raise UsageError(f"--limit-rate {text!r} is not a rate", expected="bytes per second, e.g. 500000, 800k, 20M",
                         found=repr(text), fix="give a positive number, optionally with k, m or g (x1024)")
    return int(value)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --------------------------------------------------------------------------------------------------
# Progress


class Events(Protocol):
    def file_started(self, label: str, size: int, offset: int) -> None: ...
    def file_advanced(self, label: str, n: int) -> None: ...
    def file_finished(self, label: str, ok: bool) -> None: ...
    def note(self, message: str) -> None: ...


class NoEvents:
    def file_started(self, label: str, size: int, offset: int) -> None:
        pass

    def file_advanced(self, label: str, n: int) -> None:
        pass

    def file_finished(self, label: str, ok: bool) -> None:
        pass

    def note(self, message: str) -> None:
        pass


# --------------------------------------------------------------------------------------------------
# The client


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a file must be: its size and its checksums (`algorithm -> hex`; md5 from Zenodo, sha256
    from a mirror's manifest)."""

    size: int
    checksums: dict[str, str]

    def __post_init__(self) -> None:
        for algorithm in self.checksums:
            if algorithm not in hashlib.algorithms_guaranteed:
                raise UsageError(f"unknown checksum algorithm {algorithm!r}",
                                 expected="one of " + ", ".join(sorted(hashlib.algorithms_guaranteed)),
                                 found=algorithm)

    def describe(self) -> str:
        return ", ".join(f"{a}:{h}" for a, h in sorted(self.checksums.items()))


@dataclasses.dataclass(frozen=True)
class FileJob:
    """Download `url` to `dest` through `part`."""

    label: str  # "<task>/<key>": how progress and errors name it
    url: str
    dest: Path
    part: Path
    expected: Expected


class Outcome(str, enum.Enum):
    DOWNLOADED = "downloaded"
    RESUMED = "resumed"


@dataclasses.dataclass(frozen=True)
class Downloaded:
    job: FileJob
    outcome: Outcome
    received: int  # bytes taken from the network by this run
    resumed_from: int
    digests: layout.Digests


class _Hashes:
    def __init__(self, algorithms: set[str]) -> None:
        self.algorithms = sorted(algorithms | {"md5", "sha256"})
        self.reset()

    def reset(self) -> None:
        self.h = {a: hashlib.new(a) for a in self.algorithms}
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        for h in self.h.values():
            h.update(chunk)
        self.size += len(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self.h.items()}


class Http:
    """One run's HTTP client: retry policy, bandwidth cap, stop flag, timeouts."""

    def __init__(self, *, retry: RetryPolicy | None = None, limiter: RateLimiter | None = None,
                 timeout_s: float = 60.0, stop: threading.Event | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter(None)
        self.timeout_s = timeout_s
        self.stop = stop or threading.Event()
        self._sleep = sleep or self._interruptible_sleep

    def _interruptible_sleep(self, seconds: float) -> None:
        if self.stop.wait(max(0.0, seconds)):
            raise Interrupted("stopped while waiting to retry", fix="run the same command again to resume")

    def _open(self, url: str, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        return urllib.request.urlopen(request, timeout=self.timeout_s)  # noqa: S310 (http(s) checked by callers)

    def _wait(self, attempt: int, what: str, why: str, after: float | None, note: Callable[[str], None]) -> None:
        if attempt >= self.retry.attempts:
            raise FetchError(f"{what}: gave up after {attempt} attempts",
                             expected="an answer from the server", found=why,
                             fix="run the same command again later (it resumes); check the network, a proxy, or "
                                 "pass --limit-rate / fewer --jobs if the server throttles")
        if after is not None and after > self.retry.max_retry_after_s:
            raise FetchError(f"{what}: the server asks to wait {after:.0f} s", expected="a wait under "
                             f"{self.retry.max_retry_after_s:.0f} s", found=why,
                             fix="run the same command again after that time (it resumes); fewer --jobs and a "
                                 "--limit-rate make a ban less likely")
        delay = self.retry.delay(attempt, after)
        note(f"{what}: {why}; retrying in {delay:.1f} s (attempt {attempt + 1} of {self.retry.attempts})")
        self._sleep(delay)

    # -- JSON ---------------------------------------------------------------------------------------

    def get_json(self, url: str, *, what: str, note: Callable[[str], None] = lambda m: None,
                 cap: int = JSON_CAP) -> Any:
        """GET and parse a JSON document, retrying as for files.

        Raises:
            HttpRefused: 401/403/404/410.
            FetchError: retries spent, or not JSON.
        """
        attempt = 0
        while True:
            attempt += 1
            if self.stop.is_set():
                raise Interrupted(f"{what}: stopped", fix="run the same command again")
            try:
                with self._open(url, {"Accept": "application/json"}) as resp:
                    body = resp.read(cap + 1)
            except urllib.error.HTTPError as exc:
                self._refuse_or_wait(exc, attempt, what, url, note)
                continue
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                self._wait(attempt, what, f"{url}: {_reason(exc)}", None, note)
                continue
            if len(body) > cap:
                raise FetchError(f"{what}: the answer is too large", expected=f"a JSON document under {cap} bytes",
                                 found=f"more than {cap} bytes from {url}")
            try:
                return json.loads(body)
            except ValueError as exc:
                raise FetchError(f"{what}: the answer is not JSON", expected="a JSON document",
                                 found=f"{url}: {exc}; starts {body[:120]!r}") from None

    def _refuse_or_wait(self, exc: urllib.error.HTTPError, attempt: int, what: str, url: str,
                        note: Callable[[str], None]) -> None:
        status = exc.code
        try:
            detail = exc.read(600).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 (a body is a courtesy)
            detail = ""
        finally:
            exc.close()
        if status in RETRY_STATUSES:
            after = retry_after(exc.headers.get("Retry-After")) if status in (429, 503) else None
            why = f"HTTP {status}" + (f" (Retry-After {exc.headers.get('Retry-After')})" if after is not None else "")
            self._wait(attempt, what, why, after, note)
            return
        raise HttpRefused(f"{what}: HTTP {status}", status=status, expected=f"HTTP 200 from {url}",
                          found=f"HTTP {status} {exc.reason}" + (f": {detail[:300]}" if detail else ""),
                          fix="check the record id and the --zenodo-api / --from URL; a restricted record needs "
                              "its data placed by hand")

    # -- files --------------------------------------------------------------------------------------

    def download(self, job: FileJob, events: Events | None = None) -> Downloaded:
        """Fetch `job` into `job.dest`, resuming its partial file; returns what it took.

        Raises:
            ChecksumMismatch: the complete file does not match (removed; named in the error).
            HttpRefused / FetchError / Interrupted: see the module docstring.
        """
        events = events or NoEvents()
        layout.make_dirs(job.part.parent)
        expected = job.expected
        hashes = _Hashes(set(expected.checksums))
        offset = self._prefix(job, hashes)
        resumed_from = offset
        fresh_retry_done = offset == 0
        received = 0
        events.file_started(job.label, expected.size, offset)
        ok = False
        try:
            attempt = 0
            while True:
                if offset < expected.size:
                    attempt += 1
                    got, offset = self._fetch_range(job, hashes, offset, attempt, events)
                    received += got
                    if got:
                        attempt = 0  # progress: a cut connection that moves on is not a failing one
                    if offset < expected.size:
                        continue
                found = hashes.hexdigests()
                bad = {a: h for a, h in expected.checksums.items() if found[a] != h}
                if offset == expected.size and not bad:
                    break
                job.part.unlink(missing_ok=True)
                if not fresh_retry_done:
                    # the partial came from an earlier run (another record version, a damaged copy):
                    # once from the start before blaming the source
                    events.note(f"{job.label}: the resumed file does not match its checksum; downloading it again "
                                "from the start")
                    fresh_retry_done = True
                    hashes.reset()
                    events.file_advanced(job.label, -offset)
                    offset = 0
                    continue
                algorithm = min(bad) if bad else "size"
                raise ChecksumMismatch(
                    f"{job.label}: the downloaded file does not match the record's checksum", name=job.label,
                    expected=f"{algorithm}:{expected.checksums.get(algorithm, expected.size)} ({expected.size} bytes)",
                    found=f"{algorithm}:{found.get(algorithm, offset)} ({offset} bytes) from {job.url}",
                    fix="the file was removed and no marker written; run the fetch again later, and if it fails the "
                        "same way the source holds a damaged file: report it to the record's owners")
            with open(job.part, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(job.part, layout.FILE_MODE)
            layout.make_dirs(job.dest.parent)
            os.replace(job.part, job.dest)
            digests = layout.Digests(offset, found["md5"], found["sha256"])
            layout.remember(job.dest, digests)
            ok = True
            return Downloaded(job, Outcome.RESUMED if resumed_from else Outcome.DOWNLOADED, received, resumed_from,
                              digests)
        finally:
            events.file_finished(job.label, ok)

    def _prefix(self, job: FileJob, hashes: _Hashes) -> int:
        """The bytes of an earlier run's partial file, hashed; a partial longer than the file is dropped."""
        try:
            size = os.lstat(job.part).st_size
        except FileNotFoundError:
            return 0
        if size > job.expected.size or not layout.regular_file(job.part):
            job.part.unlink(missing_ok=True)
            return 0
        with open(job.part, "rb") as fh:
            while chunk := fh.read(layout.CHUNK):
                hashes.update(chunk)
        if hashes.size != size:  # changed while being read: start over
            hashes.reset()
            job.part.unlink(missing_ok=True)
            return 0
        return size

    def _fetch_range(self, job: FileJob, hashes: _Hashes, offset: int, attempt: int,
                     events: Events) -> tuple[int, int]:
        """One request from `offset`; returns (bytes received, new offset). Waits before returning when
        the request failed in a way worth retrying (so the caller simply loops)."""
        if self.stop.is_set():
            raise Interrupted(f"{job.label}: stopped at byte {offset} of {job.expected.size}",
                              fix="run the same command again: it resumes from there")
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        what = f"downloading {job.label}"
        try:
            resp = self._open(job.url, headers)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                exc.close()
                # The server has no byte past ours: either we hold all of it (the checksum decides) or
                # our partial is longer than its file. Start over in the latter case.
                if offset != job.expected.size:
                    self._restart(job, hashes, events, offset)
                    return 0, 0
                return 0, offset
            self._refuse_or_wait(exc, attempt, what, job.url, events.note)
            return 0, offset
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            self._wait(attempt, what, f"{job.url}: {_reason(exc)}", None, events.note)
            return 0, offset
        got = 0
        with resp:
            status = resp.status
            if offset and status == 200:
                events.note(f"{job.label}: the server ignores Range requests; downloading from the start")
                self._restart(job, hashes, events, offset)
                offset = 0
            elif status == 206:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != offset:
                    self._wait(attempt, what, f"asked for byte {offset}, got Content-Range "
                                               f"{resp.headers.get('Content-Range')!r}", None, events.note)
                    return 0, offset
            elif status != 200:
                self._wait(attempt, what, f"unexpected HTTP {status}", None, events.note)
                return 0, offset
            fd = os.open(job.part, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                         layout.FILE_MODE)
            try:
                while True:
                    if self.stop.is_set():
                        raise Interrupted(f"{job.label}: stopped at byte {offset} of {job.expected.size}",
                                          fix="run the same command again: it resumes from there")
                    try:
                        chunk = resp.read1(READ_CHUNK)  # what has arrived: on disk before the next read
                    except (http.client.HTTPException, OSError) as exc:
                        why = f"the connection broke at byte {offset} of {job.expected.size}: {_reason(exc)}"
                        self._wait(attempt if not got else 1, what, why, None, events.note)
                        return got, offset
                    if not chunk:
                        break
                    if offset + len(chunk) > job.expected.size:
                        chunk = chunk[: job.expected.size - offset]
                        if not chunk:
                            break
                    self.limiter.take(len(chunk))
                    view = memoryview(chunk)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    hashes.update(chunk)
                    offset += len(chunk)
                    got += len(chunk)
                    events.file_advanced(job.label, len(chunk))
            finally:
                os.close(fd)
        if offset < job.expected.size:
            why = f"the connection closed at byte {offset} of {job.expected.size}"
            self._wait(attempt if not got else 1, what, why, None, events.note)
        return got, offset

    @staticmethod
    def _restart(job: FileJob, hashes: _Hashes, events: Events, offset: int) -> None:
        job.part.unlink(missing_ok=True)
        hashes.reset()
        events.file_advanced(job.label, -offset)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:300]


__all__ = ["ChecksumMismatch", "Downloaded", "Events", "Expected", "FetchError", "FileJob", "Http", "HttpRefused",
           "Interrupted", "NoEvents", "Outcome", "RateLimiter", "RetryPolicy", "parse_rate", "retry_after"]
