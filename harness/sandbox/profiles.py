"""Sandbox profiles: the envelope every container runs in, kept as data.

A profile is a JSON file in `sandbox_profiles/`, validated against `profile.schema.json` and loaded
into a frozen `SandboxProfile`. Sizes and durations must carry units: a bare `12` could mean bytes
or gigabytes, and a profile that silently meant the wrong one would either starve every encoder or
give it the whole machine. Unknown keys are refused for the same reason: a misspelt
`pid_limit` must not silently leave the pids limit at its default.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import jsonschema

from harness.errors import ConfigError
from harness.stage_names import Stage
from harness.paths import PROFILES_DIR  # noqa: E402  (profiles are data files in the checkout)

SCHEMA_FILE = "profile.schema.json"

_SIZE_UNITS = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str, *, key: str = "size") -> int:
    """Parse '12GiB' / '512 MiB' / '0B' into bytes; a number without a unit is refused."""
    match = _QUANTITY.match(str(text))
    if not match or match.group(2) not in _SIZE_UNITS:
        unit = match.group(2) if match else None
        found = f"{text!r} (no unit)" if match and not unit else repr(text)
        raise ConfigError(
            f"{key}: not a size with a unit",
            expected="a number followed by one of " + ", ".join(_SIZE_UNITS) + " (e.g. '12GiB')",
            found=found,
            fix=f"write {key} with an explicit unit, e.g. '{match.group(1) if match else '12'}GiB'",
        )
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def parse_duration(text: str, *, key: str = "duration") -> float:
    """Parse '90s' / '20min' / '2h' into seconds; a number without a unit is refused."""
    match = _QUANTITY.match(str(text))
    if not match or match.group(2) not in _DURATION_UNITS:
        raise ConfigError(
            f"{key}: not a duration with a unit",
            expected="a number followed by one of " + ", ".join(_DURATION_UNITS) + " (e.g. '20min')",
            found=repr(text),
            fix=f"write {key} with an explicit unit, e.g. '20min'",
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


@dataclasses.dataclass(frozen=True)
class StagePolicy:
    network: bool
    wall_clock_s: float
    writable_mounts: bool

    def __post_init__(self) -> None:
        if self.wall_clock_s <= 0:
            raise ConfigError(
                "stage wall clock must be positive",
                expected="> 0 s",
                found=f"{self.wall_clock_s} s",
            )


@dataclasses.dataclass(frozen=True)
class GpuPolicy:
    memory_bytes: int
    driver: str = "nvidia"
    emulate_compute_capability: str | None = None


@dataclasses.dataclass(frozen=True)
class SandboxProfile:
    """A validated sandbox profile; every size in bytes, every duration in seconds."""

    name: str
    description: str
    memory_bytes: int
    swap_bytes: int
    cpus: float
    pids_limit: int
    shm_bytes: int
    tmp_bytes: int
    read_only_root: bool
    user: str
    cap_drop: tuple[str, ...]
    no_new_privileges: bool
    seccomp: str
    runtime: str | None
    init: bool
    log_cap_bytes: int
    disk_cap_bytes: int
    ulimits: Mapping[str, int]
    env: Mapping[str, str]
    gpu: GpuPolicy | None
    stages: Mapping[Stage, StagePolicy]
    source: Path | None = None

    def __post_init__(self) -> None:
        uid = int(self.user.split(":", 1)[0])
        if uid == 0:
            raise ConfigError(
                f"profile {self.name}: user must not be root",
                expected="a numeric non-zero uid:gid such as '10001:10001'",
                found=self.user,
            )
        if self.memory_bytes < 16 * 1024**2:
            raise ConfigError(
                f"profile {self.name}: memory too small to start a container",
                expected=">= 16MiB",
                found=f"{self.memory_bytes} bytes",
            )
        missing = set(Stage) - set(self.stages)
        if missing:
            raise ConfigError(
                f"profile {self.name}: stages missing",
                expected=", ".join(s.value for s in Stage),
                found=", ".join(sorted(s.value for s in self.stages)),
            )

    def stage(self, stage: Stage) -> StagePolicy:
        return self.stages[Stage(stage)]

    def seccomp_path(self) -> Path | None:
        """The seccomp JSON file, or None for the engine's built-in default profile."""
        if self.seccomp == "docker-default":
            return None
        base = self.source.parent if self.source else PROFILES_DIR
        return base / self.seccomp

    def replace(self, **changes: Any) -> "SandboxProfile":
        """A copy with some fields changed (tests scale limits down); still checked."""
        return dataclasses.replace(self, **changes)


def _schema() -> dict:
    return json.loads((PROFILES_DIR / SCHEMA_FILE).read_text())


def _explain(error: jsonschema.ValidationError, origin: str) -> ConfigError:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"{path}." if path != "(top level)" else ""
        return ConfigError(
            f"{origin}: unknown key {', '.join(repr(where + k) for k in extra)}",
            expected="only these keys here: " + ", ".join(allowed),
            found=", ".join(extra),
            fix="remove or correct the key (a misspelt limit would otherwise be silently ignored)",
        )
    pattern = error.schema.get("pattern", "")
    # A bare number where a size belongs fails the schema's type check, not its pattern; both
    # mean the same to the reader: the unit is missing.
    if error.validator in ("pattern", "type") and isinstance(error.instance, (str, int, float)):
        if "B|KiB" in pattern:
            unitless = bool(re.fullmatch(r"\s*[0-9.]+\s*", str(error.instance)))
            return ConfigError(
                f"{origin}: key '{path}' is not a size with a unit",
                expected="a size such as '12GiB' (units: " + ", ".join(_SIZE_UNITS) + ")",
                found=f"{error.instance!r}" + (" (no unit)" if unitless else ""),
                fix=f"write '{path}' with an explicit unit",
            )
        if "ms|s" in pattern:
            return ConfigError(
                f"{origin}: key '{path}' is not a duration with a unit",
                expected="a duration such as '20min' (units: " + ", ".join(_DURATION_UNITS) + ")",
                found=repr(error.instance),
                fix=f"write '{path}' with an explicit unit",
            )
    if error.validator == "required":
        return ConfigError(
            f"{origin}: missing key at '{path}'",
            expected=error.message,
            found="absent",
            fix="add the key; every limit is spelt out in the profile",
        )
    return ConfigError(
        f"{origin}: invalid value at '{path}'",
        expected=str(error.schema.get("description") or error.validator),
        found=error.message,
        fix="correct the profile against sandbox_profiles/profile.schema.json",
    )


def profile_from_dict(data: dict, *, origin: str = "profile", source: Path | None = None) -> SandboxProfile:
    """Validate raw JSON data and build the frozen profile.

    Raises:
        ConfigError: naming the offending key when the data breaks the schema.
    """
    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        # best_match descends into oneOf branches (the gpu section) to the error that names a key.
        raise _explain(error, origin)
    gpu = data["gpu"]
    return SandboxProfile(
        name=data["name"],
        description=data["description"],
        memory_bytes=parse_size(data["memory"], key="memory"),
        swap_bytes=parse_size(data["swap"], key="swap"),
        cpus=float(data["cpus"]),
        pids_limit=int(data["pids_limit"]),
        shm_bytes=parse_size(data["shm_size"], key="shm_size"),
        tmp_bytes=parse_size(data["tmp_size"], key="tmp_size"),
        read_only_root=bool(data["read_only_root"]),
        user=data["user"],
        cap_drop=tuple(data["cap_drop"]),
        no_new_privileges=bool(data["no_new_privileges"]),
        seccomp=data["seccomp"],
        runtime=data.get("runtime"),
        init=bool(data["init"]),
        log_cap_bytes=parse_size(data["log_cap"], key="log_cap"),
        disk_cap_bytes=parse_size(data["disk_cap"], key="disk_cap"),
        ulimits=MappingProxyType(
            {
                k: (parse_size(v, key=f"ulimits.{k}") if isinstance(v, str) else int(v))
                for k, v in data["ulimits"].items()
            }
        ),
        env=MappingProxyType(dict(data["env"])),
        gpu=None
        if gpu is None
        else GpuPolicy(
            memory_bytes=parse_size(gpu["memory"], key="gpu.memory"),
            driver=gpu["driver"],
            emulate_compute_capability=gpu.get("emulate_compute_capability"),
        ),
        stages=MappingProxyType(
            {
                Stage(name): StagePolicy(
                    network=bool(s["network"]),
                    wall_clock_s=parse_duration(s["wall_clock"], key=f"stages.{name}.wall_clock"),
                    writable_mounts=bool(s["writable_mounts"]),
                )
                for name, s in data["stages"].items()
            }
        ),
        source=source,
    )


def load_profile(name_or_path: str | Path) -> SandboxProfile:
    """Load a profile by name (`t4`, `cpu`) from sandbox_profiles/, or from a JSON file path.

    Raises:
        ConfigError: unknown name, unreadable file, invalid JSON or a schema violation.
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.exists():
        path = candidate
    else:
        path = PROFILES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.json") if p.name != SCHEMA_FILE)
        raise ConfigError(
            f"unknown sandbox profile {str(name_or_path)!r}",
            expected="one of: " + ", ".join(known) + ", or a path to a profile JSON file",
            found=str(path),
            fix="pass --profile with a known name or an existing file",
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path.name}: not valid JSON",
            expected="a JSON object",
            found=f"{exc.msg} at line {exc.lineno} column {exc.colno}",
            fix="fix the JSON syntax",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: not a JSON object", expected="an object", found=type(data).__name__)
    return profile_from_dict(data, origin=path.name, source=path.resolve())
