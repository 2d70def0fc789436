"""A package index on the host, for builds that must not depend on the public one.

It serves PEP 503 HTML and PEP 691 JSON simple pages (by the `Accept` header, as PyPI does), the
latter with PEP 700 `upload-time`s the test chooses, so `pip --uploaded-prior-to` and the harness's
`--resolve-before` check can be exercised offline. `html_only=True` makes it an index that serves
no upload times (a folder of files behind a web server). Build containers reach it at the docker0
address through the egress network's allow rule, as an organizer's mirror would be reached.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

DOCKER0 = "172.17.0.1"


class LocalIndex:
    def __init__(self, root: Path, *, html_only: bool = False):
        self.root = root
        self.html_only = html_only
        (root / "files").mkdir(parents=True, exist_ok=True)
        self.projects: dict[str, list[dict]] = {}
        handler = partial(_Handler, index=self)
        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        # Build containers run on aecc-egress, which drops traffic to the host; an organizer's
        # mirror is let through the same way (AECC_EGRESS_ALLOW / egress.allow_host_port).
        from harness.sandbox import egress

        egress.allow_host_port(DOCKER0, self.port)

    def url(self, credentials: str | None = None, host: str = DOCKER0) -> str:
        auth = f"{credentials}@" if credentials else ""
        return f"http://{auth}{host}:{self.port}/simple"

    def _publish(self, project: str, filename: str, data: bytes, uploaded: dt.datetime | None) -> None:
        (self.root / "files" / filename).write_bytes(data)
        uploaded = uploaded or dt.datetime.now(dt.timezone.utc)
        self.projects.setdefault(_normal(project), []).append({
            "filename": filename,
            "url": f"../../files/{filename}",
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "upload-time": uploaded.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        })

    def add_wheel(self, name: str, version: str, *, requires: tuple[str, ...] = (),
                  uploaded: dt.datetime | None = None, module_source: str | None = None) -> str:
        """A pure-Python wheel whose module `name` holds `__version__`; returns its sha256."""
        dist = name.replace("-", "_")
        info = f"{dist}-{version}.dist-info"
        files = {
            f"{dist}/__init__.py": (module_source or f"__version__ = {version!r}\n").encode(),
            f"{info}/METADATA": ("Metadata-Version: 2.1\n" f"Name: {name}\n" f"Version: {version}\n"
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: aecc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        record = "".join(f"{path},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}\n"
                         for path, data in files.items()) + f"{info}/RECORD,,\n"
        files[f"{info}/RECORD"] = record.encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, data in files.items():
                zf.writestr(path, data)
        filename = f"{dist}-{version}-py3-none-any.whl"
        self._publish(name, filename, buf.getvalue(), uploaded)
        return hashlib.sha256(buf.getvalue()).hexdigest()

    def add_sdist(self, source: Path, name: str, version: str = "1.0") -> None:
        """An sdist of the files in `source` (its setup code runs at install time)."""
        dist = f"{name.replace('-', '_')}-{version}"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
            for path in sorted(source.iterdir()):
                tar.add(path, arcname=f"{dist}/{path.name}")
            info = tarfile.TarInfo(f"{dist}/PKG-INFO")
            info.size = len(pkg_info)
            tar.addfile(info, io.BytesIO(pkg_info))
        self._publish(name, f"{dist}.tar.gz", buf.getvalue(), None)

    def add_file(self, path: Path, project: str, *, uploaded: dt.datetime | None = None) -> str:
        """Serve a distribution file that already exists (a wheel on this machine's disk, such as
        torch's `+cpu` build in /opt/wheels) under `project`, by its own file name; returns its sha256."""
        data = Path(path).read_bytes()
        self._publish(project, Path(path).name, data, uploaded)
        return hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        from harness.sandbox import egress

        egress.revoke_host_port(DOCKER0, self.port)
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "LocalIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _normal(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, index: LocalIndex, **kw):
        self.index = index
        super().__init__(*args, directory=str(index.root), **kw)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if parts[:1] != ["simple"]:
            return super().do_GET()
        if len(parts) == 1:
            names = sorted(self.index.projects)
            return self._send("text/html", "".join(f'<a href="{n}/">{n}</a>\n' for n in names).encode())
        files = self.index.projects.get(_normal(parts[1]))
        if files is None:
            self.send_error(404)
            return
        if "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", "") and not self.index.html_only:
            body = json.dumps({"meta": {"api-version": "1.1"}, "name": parts[1], "files": files}).encode()
            return self._send("application/vnd.pypi.simple.v1+json", body)
        links = "".join(f'<a href="{f["url"]}#sha256={f["hashes"]["sha256"]}">{f["filename"]}</a>\n' for f in files)
        return self._send("text/html", f"<html><body>{links}</body></html>".encode())

    def _send(self, kind: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
