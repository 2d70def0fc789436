"""How builds reach the outside: CA bundle, pip index options, where the base comes from.

None of these values enters an image: the bundle and a generated pip.conf are bind-mounted into the
build container only, and untrusted builds get index URLs without credentials.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from harness.errors import UsageError

DEFAULT_MIRROR = "http://deb.debian.org/debian"

#: where a build container finds its pip.conf and CA bundle (never inside a committed layer)
SECRETS_DIR = "/run/aecc-build-secrets"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How builds reach the outside: CA bundle, pip index options, where the base comes from.

    None of these values enters an image: the bundle and a generated pip.conf are bind-mounted
    into the build container only.
    """

    ca_bundle: Path | None = None
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    pip_trusted_hosts: tuple[str, ...] = ()
    base_source: str = "auto"  # auto | pull | bootstrap
    debian_mirror: str = DEFAULT_MIRROR
    force: bool = False
    profile: str = "cpu"  # the envelope of trusted layer builds
    #: the envelope of untrusted (submission) layer builds: validate/score pass the run's profile
    submission_profile: str | None = None
    #: freeze the resolution of submission requirements at this instant (ISO 8601, UTC): packages
    #: uploaded later are ignored (pip's --uploaded-prior-to), e.g. the submission deadline
    resolve_before: str | None = None
    #: which torch build submission layers stand on: `cuda` (what a T4 runs) or `cpu` (a CI runner's disk)
    torch_flavour: str = "cuda"
    #: where `+cpu` torch builds come from (PyTorch's CPU index unless an organizer mirrors it)
    torch_cpu_index_url: str = "https://download.pytorch.org/whl/cpu"

    def __post_init__(self) -> None:
        if self.torch_flavour not in ("cuda", "cpu"):
            raise UsageError("unknown torch flavour", expected="cuda or cpu", found=repr(self.torch_flavour),
                             fix="pass --torch-flavour cuda (T4-like) or cpu (small images for CI)")
        if self.resolve_before is not None:
            object.__setattr__(self, "resolve_before", parse_instant(self.resolve_before))
        if self.base_source not in ("auto", "pull", "bootstrap"):
            raise UsageError(
                "unknown base source", expected="auto, pull or bootstrap", found=repr(self.base_source)
            )
        if self.ca_bundle is not None and not Path(self.ca_bundle).is_file():
            raise UsageError(
                "CA bundle not found",
                expected="a PEM file of trusted certificates",
                found=str(self.ca_bundle),
                fix="pass --ca-bundle with an existing file, or set AECC_CA_BUNDLE",
            )

    @classmethod
    def from_environment(cls, **overrides: Any) -> "BuildOptions":
        """Defaults from AECC_* variables, then pip's own PIP_CERT / the system bundle."""
        env = os.environ
        ca = env.get("AECC_CA_BUNDLE") or env.get("PIP_CERT") or env.get("SSL_CERT_FILE")
        if not ca and Path("/etc/ssl/certs/ca-certificates.crt").is_file():
            ca = "/etc/ssl/certs/ca-certificates.crt"
        values: dict[str, Any] = {
            "ca_bundle": Path(ca) if ca else None,
            "pip_index_url": env.get("AECC_PIP_INDEX_URL") or None,
            "pip_extra_index_urls": tuple(env.get("AECC_PIP_EXTRA_INDEX_URL", "").split()),
            "pip_trusted_hosts": tuple(env.get("AECC_PIP_TRUSTED_HOST", "").split()),
            "base_source": env.get("AECC_BASE_SOURCE", "auto"),
            "debian_mirror": env.get("AECC_DEBIAN_MIRROR", DEFAULT_MIRROR),
            "resolve_before": env.get("AECC_RESOLVE_BEFORE") or None,
            "torch_flavour": env.get("AECC_TORCH_FLAVOUR") or "cuda",
            "torch_cpu_index_url": env.get("AECC_TORCH_CPU_INDEX_URL") or "https://download.pytorch.org/whl/cpu",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def pip_conf(self, *, credentials: bool = True) -> str:
        """pip's configuration for a build; untrusted builds get index URLs without credentials."""
        clean = (lambda u: u) if credentials else _strip_credentials
        lines = ["[global]", "no-cache-dir = true", "timeout = 180"]
        if self.ca_bundle is not None:
            lines.append(f"cert = {SECRETS_DIR}/ca.pem")
        if self.pip_index_url:
            lines.append(f"index-url = {clean(self.pip_index_url)}")
        if self.pip_extra_index_urls:
            lines.append("extra-index-url = " + " ".join(clean(u) for u in self.pip_extra_index_urls))
        if self.pip_trusted_hosts:
            lines.append("trusted-host = " + " ".join(self.pip_trusted_hosts))
        return "\n".join(lines) + "\n"

    def describe(self) -> dict:
        """What doctor prints: the options builds will use (index URLs may carry credentials: masked)."""
        return {
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "pip_index_url": _mask(self.pip_index_url) if self.pip_index_url else "(PyPI default)",
            "pip_extra_index_urls": [_mask(u) for u in self.pip_extra_index_urls],
            "pip_trusted_hosts": list(self.pip_trusted_hosts),
            "base_source": self.base_source,
            "debian_mirror": self.debian_mirror,
            "resolve_before": self.resolve_before,
            "torch_flavour": self.torch_flavour,
            "torch_cpu_index_url": _mask(self.torch_cpu_index_url),
        }


def _strip_credentials(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def _mask(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def parse_instant(text: str) -> str:
    """'2025-04-30T23:59:59Z' (or with an offset) -> the same instant in UTC, 'YYYY-MM-DDTHH:MM:SSZ'.

    Raises:
        UsageError: not an ISO 8601 date-time with a time zone.
    """
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise UsageError("--resolve-before is not an instant", expected="an ISO 8601 date-time with a time zone, "
                         "e.g. 2025-04-30T23:59:59Z", found=repr(text),
                         fix="write the time in UTC with a trailing Z")
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def index_urls(options: BuildOptions) -> list[str]:
    return [options.pip_index_url or DEFAULT_INDEX, *options.pip_extra_index_urls]


DEFAULT_INDEX = "https://pypi.org/simple"


def require_upload_times(options: BuildOptions, project: str = "pip", timeout_s: float = 30.0) -> None:
    """Refuse `--resolve-before` where an index does not say when its files were uploaded.

    pip's `--uploaded-prior-to` needs PEP 700's `upload-time` in the JSON simple API; an index without
    it (a folder of wheels, many mirrors) makes pip ignore the option silently and resolve against
    everything, which is exactly what the organizers asked not to happen.

    Raises:
        UsageError: an index answers without upload times, or not at all; the message names it.
    """
    import json
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(options.ca_bundle) if options.ca_bundle else None)
    for url in index_urls(options):
        page = url.rstrip("/") + f"/{project}/"
        request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
                kind = response.headers.get("Content-Type", "")
                body = response.read(32 * 1024**2)
        except OSError as exc:
            raise UsageError(f"--resolve-before: the package index {_mask(url)} could not be asked for upload times",
                             expected=f"{page} to answer", found=f"{type(exc).__name__}: {exc}",
                             fix="check the index URL and the network, or drop --resolve-before") from None
        files = []
        if "json" in kind:
            try:
                files = json.loads(body).get("files", [])
            except (ValueError, AttributeError):
                files = []
        if not files or not all("upload-time" in f for f in files):
            raise UsageError(
                f"--resolve-before cannot be honoured: the package index {_mask(url)} does not serve upload times",
                expected="PEP 700 JSON simple pages with an upload-time for every file (PyPI serves them)",
                found=f"{page} answered {kind or 'without a content type'}"
                      + (" with files lacking upload-time" if files else " without a JSON file list"),
                fix="use an index that serves upload times, or drop --resolve-before (pip would otherwise "
                    "ignore the instant silently and resolve against every upload)")
