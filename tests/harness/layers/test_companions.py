"""Every install on a torch layer is held to the companion builds made for that torch: the table
covers every torch from the template's 2.2 to the runtime's and beyond, it follows its schema, the
runtime's torchaudio and torchcodec come from it, and each torch's constraints pin each companion
exactly or forbid it. A requirement that contradicts the table is refused before anything installs,
naming both versions and the matching one (issue 9)."""

from __future__ import annotations

import pytest
from packaging.version import Version

from harness.layers import companions
from harness.layers.model import (
    RUNTIME_TORCH,
    runtime_deps_layer,
    runtime_versions,
    torch_layer,
)
from harness.stages.build import check_companions
from harness.stages.contents import Requirements
from harness.stages.rejection import IntakeRejected, RejectReason


def test_the_table_covers_every_torch_from_the_templates_to_the_runtimes():
    covered = companions.torch_versions()
    for v in ("2.2.0", "2.2.1", "2.2.2", "2.3.0", "2.3.1", "2.4.0", "2.4.1", "2.5.0", "2.5.1", "2.6.0", "2.7.0",
              "2.7.1", "2.8.0", "2.9.0", "2.9.1", "2.10.0", "2.11.0"):
        assert v in covered, v
    assert covered == sorted(covered, key=Version)
    assert Version(covered[-1]) >= Version(RUNTIME_TORCH)


@pytest.mark.parametrize("torch, audio, vision", [
    ("2.2.1", "2.2.1", "0.17.1"), ("2.5.1", "2.5.1", "0.20.1"), ("2.9.1", "2.9.1", "0.24.1"),
    ("2.11.0", "2.11.0", "0.26.0"), ("2.13.0", None, "0.28.0"), ("2.15.0", "2.11.1", "0.29.2"),
])
def test_known_pairs(torch, audio, vision):
    row = companions.for_torch(torch)
    assert (row.torchaudio, row.torchvision) == (audio, vision)


def test_the_runtime_takes_its_companions_from_the_table():
    row = companions.for_torch(RUNTIME_TORCH)
    assert runtime_versions() == {"torch": RUNTIME_TORCH, "torchaudio": row.torchaudio, "torchcodec": row.torchcodec,
                                  "xares": "0.1.3"}
    assert runtime_deps_layer().files["constraints.txt"] == row.constraints()
    assert torch_layer().files["constraints.txt"] == row.constraints()


def test_constraints_pin_each_companion_or_forbid_it():
    lines = [l for l in companions.for_torch("2.11.0").constraints().splitlines() if not l.startswith("#")]
    assert lines == ["torch==2.11.0", "torchaudio==2.11.0", "torchvision==0.26.0", "torchcodec==0.17.0"]
    lines = [l for l in companions.for_torch("2.13.0").constraints().splitlines() if not l.startswith("#")]
    assert "torchaudio<0" in lines and "torchvision==0.28.0" in lines
    unknown = companions.for_torch("1.13.1")
    assert not unknown.known
    assert [l for l in unknown.constraints().splitlines() if not l.startswith("#")] == ["torch==1.13.1"]


class _Sub:
    def __init__(self, *lines: str):
        self.requirements = Requirements(tuple(lines))


def test_a_mismatching_companion_pin_is_refused_naming_both_versions_and_the_match():
    with pytest.raises(IntakeRejected) as err:
        check_companions(_Sub("torchcrepe==0.0.24", "torchaudio==2.11.1"), "2.11.0")
    assert err.value.reason is RejectReason.REQUIREMENT_COMPANION
    text = err.value.render()
    assert "torchaudio==2.11.1" in text and "torch 2.11.0" in text and "torchaudio==2.11.0" in text


def test_companions_without_a_version_or_with_the_match_pass():
    check_companions(_Sub("torchaudio", "torchvision>=0.20", "numpy"), "2.11.0")
    check_companions(_Sub("torchaudio==2.2.1"), "2.2.1")


def test_a_companion_never_made_for_the_torch_is_refused():
    with pytest.raises(IntakeRejected, match="no torchaudio was made for torch 2.13.0"):
        check_companions(_Sub("torchaudio"), "2.13.0")
    with pytest.raises(IntakeRejected, match="does not cover"):
        check_companions(_Sub("torchvision"), "1.13.1")
