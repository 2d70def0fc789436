"""A local stand-in for Zenodo's records API (and for an organizer's mirror), for `aecc data` tests.

A real HTTP server (`http.server` in a thread, bound to 127.0.0.1, a port of its own) that answers
like Zenodo's REST API:

* `GET /api/records/<id>`: the record as Zenodo's JSON gives it (`id`, `doi`, `revision`,
  `metadata.version`, `metadata.access_right`, `files: [{key, size, checksum: "md5:<hex>", links}]`);
* `GET /api/records/<id>/files`: InvenioRDM's listing of the files (`form="rdm"` records leave
  them out of the record itself);
* `GET /api/records/<id>/files/<key>/content`: the file, with `Range: bytes=N-` (206 and
  `Content-Range`; 416 past the end);
* a restricted record: `access_right: restricted`, no files, and 403 for its files;
* misbehaviour on request: `throttle` (the next requests get 429 with `Retry-After`), `cut` (the next
  download of a file sends its full `Content-Length`, then closes the connection after N bytes),
  `stall` (sends N bytes, then holds the connection until `release`), `corrupt` (the record advertises
  a checksum the served bytes do not have);
* `ignore_range=True`: a server that answers a Range request with 200 and the whole file;
* with `static_root`, every other path is served from that folder (with Range): an organizer's mirror
  laid out like ENV.

It counts what it serves: `served[(record, key)]` / `served_paths[path]` are body bytes actually
written, `requests` every request (method, path, Range header, status). Bounded: at most
`max_requests` requests (then 503), every connection has a socket timeout, and the server shuts
itself down after `lifetime_s` even if a test forgets to.
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import json
import socket
import threading
import urllib.parse
from functools import partial
from pathlib import Path
from typing import Mapping


class StandInRecord:
    def __init__(self, record_id: str, files: Mapping[str, bytes], *, version: str | None = "1.0",
                 revision: int = 3, restricted: bool = False, form: str = "legacy") -> None:
        #: "legacy": `files` is the list Zenodo's API gives; "rdm": InvenioRDM's `files: {enabled, count}`
        #: without entries, which `/api/records/<id>/files` then lists
        self.form = form
        self.record_id = str(record_id)
        self.files = dict(files)
        self.version = version
        self.revision = revision
        self.restricted = restricted
        self.advertised: dict[str, str] = {}  # key -> md5 to advertise instead of the real one

    def document(self, base: str) -> dict:
        meta = {"title": f"stand-in record {self.record_id}", "access_right": "restricted" if self.restricted
                else "open", "doi": f"10.5281/zenodo.{self.record_id}"}
        if self.version is not None:
            meta["version"] = self.version
        doc = {"id": int(self.record_id), "recid": self.record_id, "conceptrecid": str(int(self.record_id) - 1),
               "doi": f"10.5281/zenodo.{self.record_id}", "revision": self.revision, "metadata": meta,
               "links": {"self": f"{base}/api/records/{self.record_id}",
                         "archive": f"{base}/api/records/{self.record_id}/files-archive"}}
        if not self.restricted:
            if self.form == "rdm":
                doc["files"] = {"enabled": True, "count": len(self.files)}
                doc["access"] = {"record": "public", "files": "public"}
            else:
                doc["files"] = self.entries()
        return doc

    def entries(self) -> list[dict]:
        return [{"id": hashlib.sha1(f"{self.record_id}/{key}".encode()).hexdigest(), "key": key, "size": len(data),
                 "checksum": "md5:" + self.advertised.get(key, hashlib.md5(data).hexdigest()),
                 # deliberately elsewhere: the client must build its URLs from its own API base
                 "links": {"self": f"https://zenodo.invalid/api/records/{self.record_id}/files/{key}/content"}}
                for key, data in self.files.items()]


class ZenodoStandIn:
    def __init__(self, *, static_root: Path | None = None, lifetime_s: float = 600.0, max_requests: int = 5000,
                 socket_timeout_s: float = 30.0, ignore_range: bool = False) -> None:
        self.ignore_range = ignore_range  # answer 200 with the whole file to a Range request (some servers do)
        self.records: dict[str, StandInRecord] = {}
        self.static_root = Path(static_root).resolve() if static_root else None
        self.max_requests = max_requests
        self.requests: list[tuple[str, str, str | None, int]] = []
        self.served: collections.Counter = collections.Counter()  # (record, key) -> body bytes written
        self.served_paths: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self._throttle: list[tuple[int, str | None]] = []  # (Retry-After seconds, path substring)
        self._cuts: dict[tuple[str, str], int] = {}
        self._stalls: dict[tuple[str, str], int] = {}
        self.stalled = threading.Event()  # set while a stalled download holds its connection
        self._release = threading.Event()
        self.socket_timeout_s = socket_timeout_s
        handler = partial(_Handler, standin=self)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="zenodo-stand-in", daemon=True)
        self.thread.start()
        self._timer = threading.Timer(lifetime_s, self.close)
        self._timer.daemon = True
        self._timer.start()
        self._closed = False

    # -- set-up -------------------------------------------------------------------------------------

    @property
    def api(self) -> str:
        return f"{self.base}/api"

    def add_record(self, record_id: str, files: Mapping[str, bytes], **kw) -> StandInRecord:
        record = StandInRecord(record_id, files, **kw)
        self.records[record.record_id] = record
        return record

    def corrupt(self, record_id: str, key: str) -> None:
        """Advertise the md5 of other bytes for `key`: what is served no longer matches the record."""
        self.records[record_id].advertised[key] = hashlib.md5(b"not these bytes").hexdigest()

    def throttle(self, times: int = 1, retry_after: int = 1, path_contains: str | None = None) -> None:
        """The next `times` requests (whose path contains `path_contains`) get 429 with Retry-After."""
        with self.lock:
            self._throttle += [(retry_after, path_contains)] * times

    def cut(self, record_id: str, key: str, after: int) -> None:
        """The next download of `key` closes its connection after `after` body bytes."""
        self._cuts[(record_id, key)] = after

    def stall(self, record_id: str, key: str, after: int) -> None:
        """The next download of `key` sends `after` body bytes, then holds the connection until `release()`."""
        self._release.clear()
        self._stalls[(record_id, key)] = after

    def release(self) -> None:
        self._release.set()

    def file_url(self, record_id: str, key: str) -> str:
        return f"{self.api}/records/{record_id}/files/{urllib.parse.quote(key, safe='')}/content"

    def statuses(self, path_contains: str = "") -> list[int]:
        return [status for _m, path, _r, status in self.requests if path_contains in path]

    def ranges(self, path_contains: str = "") -> list[str | None]:
        return [rng for _m, path, rng, _s in self.requests if path_contains in path]

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.served.clear()
            self.served_paths.clear()

    # -- life ---------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release.set()
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ZenodoStandIn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30.0

    def __init__(self, *args, standin: ZenodoStandIn, **kw) -> None:
        self.standin = standin
        self.timeout = standin.socket_timeout_s  # StreamRequestHandler.setup() sets it on the socket
        super().__init__(*args, **kw)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (quiet: the test reads `requests`)
        pass

    # -- answers ------------------------------------------------------------------------------------

    def _log(self, status: int) -> None:
        with self.standin.lock:
            self.standin.requests.append((self.command, self.path, self.headers.get("Range"), status))

    def _json(self, status: int, body: object, headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(body).encode()
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, headers: Mapping[str, str] = {}) -> None:
        self._json(status, {"status": status, "message": message}, headers)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        s = self.standin
        with s.lock:
            if len(s.requests) >= s.max_requests:
                over = True
            else:
                over = False
                throttled = None
                for i, (_after, needle) in enumerate(s._throttle):
                    if needle is None or needle in self.path:
                        throttled = s._throttle.pop(i)
                        break
        if over:
            return self._error(503, "the stand-in's request budget is spent")
        if throttled is not None:
            return self._error(429, "Too many requests", {"Retry-After": str(throttled[0])})
        path = urllib.parse.urlsplit(self.path).path
        parts = [urllib.parse.unquote(p) for p in path.split("/")]
        # ['', 'api', 'records', id] or ['', 'api', 'records', id, 'files', key, 'content']
        if parts[1:3] == ["api", "records"] and len(parts) == 4:
            record = s.records.get(parts[3])
            if record is None:
                return self._error(404, "PID does not exist.")
            return self._json(200, record.document(s.base))
        if parts[1:3] == ["api", "records"] and len(parts) == 5 and parts[4] == "files":
            record = s.records.get(parts[3])
            if record is None:
                return self._error(404, "PID does not exist.")
            if record.restricted:
                return self._error(403, "You do not have permission to access this record's files.")
            return self._json(200, {"enabled": True, "entries": record.entries()})
        if parts[1:3] == ["api", "records"] and len(parts) == 7 and parts[4] == "files" and parts[6] == "content":
            record = s.records.get(parts[3])
            if record is None or parts[5] not in record.files:
                return self._error(404, "File not found.")
            if record.restricted:
                return self._error(403, "You do not have permission to access this record's files.")
            return self._body(record.files[parts[5]], (record.record_id, parts[5]))
        if s.static_root is not None and parts[1:2] != ["api"]:
            target = (s.static_root / "/".join(parts[1:])).resolve()
            if s.static_root not in target.parents or not target.is_file():
                return self._error(404, "Not found")
            return self._body(target.read_bytes(), ("mirror", "/".join(parts[1:])))
        return self._error(404, "Not found")

    def _body(self, data: bytes, ident: tuple[str, str]) -> None:
        s = self.standin
        total = len(data)
        start = 0
        rng = None if s.ignore_range else self.headers.get("Range")
        if rng:
            spec = rng.strip().removeprefix("bytes=")
            first, _, last = spec.partition("-")
            start = int(first) if first else 0
            end = int(last) if last else total - 1
            if start >= total:
                return self._error(416, "Range Not Satisfiable", {"Content-Range": f"bytes */{total}"})
            end = min(end, total - 1)
            body = data[start:end + 1]
            status = 206
        else:
            body = data
            status = 200
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"md5:{hashlib.md5(data).hexdigest()}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{total}")
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = s._cuts.pop(ident, None)
        stall = s._stalls.pop(ident, None)
        limit = cut if cut is not None else stall
        if limit is not None:
            body = body[:limit]
        sent = 0
        view = memoryview(body)
        while sent < len(body):
            n = min(64 * 1024, len(body) - sent)
            self.wfile.write(view[sent:sent + n])
            sent += n
            with s.lock:
                s.served[ident] += n
                s.served_paths[self.path] += n
        self.wfile.flush()
        if stall is not None:
            s.stalled.set()
            s._release.wait(60)
        if limit is not None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
