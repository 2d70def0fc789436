"""The builds of torchaudio, torchvision and torchcodec made for each torch, as data.

A companion package links against one torch's C++ ABI: torchaudio 2.11.1 on torch 2.11.0 fails to
load `libtorchaudio.so`. Its metadata does not always say so (2.11.1 declares `torch>=2.11`), so a
pip resolve constrained only on torch picks whatever is newest on the index that day, and an
unchanged ZIP that passed last week fails today. Every install on a torch layer is therefore
constrained to the table in `companions.json` (sources there): the runtime's, and every
submission's. A companion the table marks as never made for a torch gets an impossible constraint,
so a requirement on it fails the build instead of installing a build for another torch.

A requirements.txt that pins a companion the table contradicts is refused before anything installs
(`harness.stages.build`), naming both versions and the matching one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from packaging.utils import canonicalize_name

from harness.errors import ConfigError

TABLE = Path(__file__).resolve().parent / "companions.json"
NAMES = ("torchaudio", "torchvision", "torchcodec")


@dataclasses.dataclass(frozen=True)
class Companions:
    """The companion builds for one torch; None where none was made for it (or it is not in the table)."""

    torch: str
    torchaudio: str | None
    torchvision: str | None
    torchcodec: str | None
    known: bool = True  # False: this torch is not in the table, nothing is known of its companions

    def version(self, name: str) -> str | None:
        return getattr(self, canonicalize_name(name).replace("-", ""))

    def constraints(self) -> str:
        """A pip constraints file: torch exactly, each companion exactly or not at all."""
        lines = [f"# aecc: companions of torch {self.torch} (harness/layers/companions.json)", f"torch=={self.torch}"]
        if not self.known:
            lines.append(f"# torch {self.torch} is not in the table: only torch itself is constrained")
            return "\n".join(lines) + "\n"
        for name in NAMES:
            version = self.version(name)
            if version is None:
                # `<0` matches no release: pip stops with "(constraint) name<0" naming the package.
                lines.append(f"# no {name} was made for torch {self.torch}")
                lines.append(f"{name}<0")
            else:
                lines.append(f"{name}=={version}")
        return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    from harness import schemas

    try:
        data = json.loads(TABLE.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"the companion table {TABLE} cannot be read", found=str(exc),
                          fix="restore harness/layers/companions.json") from None
    found = schemas.problems("companions", data)
    if found:
        raise ConfigError(f"the companion table {TABLE.name} is invalid", expected="harness/schemas/companions.schema.json",
                          found="; ".join(found), fix="correct the table")
    return data


def torch_versions() -> list[str]:
    """Every torch the table covers, oldest first."""
    from packaging.version import Version

    return sorted(_table()["torch"], key=Version)


def for_torch(torch: str) -> Companions:
    row = _table()["torch"].get(torch)
    if row is None:
        return Companions(torch, None, None, None, known=False)
    return Companions(torch, row["torchaudio"], row["torchvision"], row["torchcodec"])
