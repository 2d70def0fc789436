"""Speech from espeak-ng, the one host tool the generated data needs (`scripts/host-tools.sh` installs it).

`tiny_digits` and the speech stand-ins (`subway_broadcast`, `librispeech`) need real spoken words,
which cannot be synthesised from sines and noise. This module is the only place that runs the
external program: it finds it, reads its version (part of every manifest, since another espeak-ng
speaks other bytes) and turns one utterance into 16-bit PCM, with errors that say how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

from harness.errors import InfraError

ESPEAK = "espeak-ng"
INSTALL_HINT = "run `scripts/host-tools.sh` (root on Debian: installs it with apt-get) or `apt-get install espeak-ng`"

ESPEAK_VOICES = ("en-us", "en-gb", "en-029", "en-gb-scotland")
ESPEAK_VARIANTS = ("", "+f2", "+m3", "+f4", "+m7")


def espeak_version() -> str | None:
    exe = shutil.which(ESPEAK)
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: ..."
    parts = out.split(":", 1)[-1].split()
    return parts[0] if parts else out.strip()


def espeak(word: str, voice: str, speed: int, pitch: int) -> tuple[int, bytes]:
    with tempfile.TemporaryDirectory(prefix="taskgen-espeak-") as tmp:
        out = Path(tmp) / "out.wav"
        cmd = [ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not out.exists():
            raise InfraError(
                "espeak-ng failed to speak a digit word",
                expected=f"`{' '.join(cmd)}` to write a wav file",
                found=f"exit {proc.returncode}: {proc.stderr.strip()[:300]}",
                fix=f"check the espeak-ng installation ({INSTALL_HINT})",
            )
        with wave.open(str(out), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise InfraError(
                    "espeak-ng wrote an unexpected wav format",
                    expected="mono 16-bit PCM",
                    found=f"{w.getnchannels()} channels, {8 * w.getsampwidth()} bit",
                )
            return w.getframerate(), w.readframes(w.getnframes())


__all__ = ["ESPEAK", "ESPEAK_VARIANTS", "ESPEAK_VOICES", "INSTALL_HINT", "espeak", "espeak_version"]
