"""The trusted runtime image is the set measured to score X-ARES on CPU (torch 2.11.0, torchaudio
2.11.0, torchcodec 0.17.0 with Debian's FFmpeg, xares 0.1.3, Python 3.11), it works inside the
full sandbox (read-only root, non-root, no network), and rebuilding it unchanged is a no-op."""

from __future__ import annotations

import json

import pytest

from harness.layers.build import build_chain
from harness.layers.model import runtime_layer, runtime_versions
from harness.sandbox.profiles import load_profile
from harness.stage_names import Stage
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Outcome, RunSpec

pytestmark = pytest.mark.slow  # builds the 6.4 GB runtime image when it is not there yet


@pytest.fixture(scope="module")
def runtime_image(client):
    return build_chain(client, runtime_layer(), log=print)[-1].image


def _run(client, image, code, tmp_path):
    spec = RunSpec(stage=Stage.CHECK, image=image, command=("python", "-c", code))
    result = run_stage(client, load_profile("cpu"), spec, tmp_path / "run.log")
    assert result.outcome is Outcome.OK, result.log_tail()
    return json.loads([l for l in result.log_path.read_text().splitlines() if l.startswith("{")][-1])


def test_unchanged_runtime_rebuild_is_a_noop(client, runtime_image):
    again = build_chain(client, runtime_layer(), log=lambda m: None)
    assert all(r.cached for r in again), again
    assert again[-1].image == runtime_image
    assert sum(r.seconds for r in again) < 5


def test_runtime_versions_inside_the_sandbox(client, runtime_image, tmp_path):
    data = _run(client, runtime_image, "import json; from checker.probe import probe; print(json.dumps(probe()))",
                tmp_path)
    pkgs = data["packages"]
    # The companions are the table's (harness/layers/companions.json): torchaudio 2.11.0 and
    # torchcodec 0.17.0 for torch 2.11.0, whatever newer builds the index holds.
    assert runtime_versions() == {"torch": "2.11.0", "torchaudio": "2.11.0", "torchcodec": "0.17.0", "xares": "0.1.3"}
    for name, version in runtime_versions().items():
        assert pkgs[name].split("+")[0] == version, (name, pkgs[name])
    assert data["python"].startswith("3.11.")
    assert data["ffmpeg"] == "ok"
    sandbox = data["sandbox"]
    assert sandbox["uid"] == 10001 and sandbox["root_writable"] is False
    assert sandbox["network_interfaces"] == ["lo"]
    assert int(sandbox["memory_limit"]) == 12 * 2**30


def test_runtime_decodes_audio_and_imports_xares_read_only(client, runtime_image, tmp_path):
    code = r"""
import json, math, struct, wave
with wave.open('/tmp/tone.wav', 'wb') as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes(b''.join(struct.pack('<h', int(12000 * math.sin(2 * math.pi * 440 * i / 16000))) for i in range(24000)))
import torchaudio, xares
from xares.task import TaskConfig  # the scoring engine's entry point imports under a read-only root
wav, sr = torchaudio.load('/tmp/tone.wav')
print(json.dumps({'shape': list(wav.shape), 'sr': sr, 'peak': round(float(wav.abs().max()), 3)}))
"""
    data = _run(client, runtime_image, code, tmp_path)
    assert data == {"shape": [1, 24000], "sr": 16000, "peak": pytest.approx(0.366, abs=0.01)}
