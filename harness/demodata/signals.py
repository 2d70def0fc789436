"""Sound synthesis with the standard library only: the building blocks every generated clip is made of.

The demo and stand-in tasks (`harness.demodata.tiny`, `harness.demodata.standins`) describe their
classes as mixes of tones, chirps, noises and clicks; this module is where those are computed, as
lists of floats in [-1, 1], and turned into 16-bit PCM and wav bytes. It is kept apart from the task
definitions so that a new task reuses the primitives, and from the shard writer so that what a
sound is and how it is stored change independently. Standard library only (`math`, `random`,
`array`, `wave`): the generator must run on a bare host without numpy, and one seed must give the
same samples on every machine.
"""

from __future__ import annotations

import array
import io
import math
import random
import sys
import wave
from typing import Sequence

# --- signal helpers (floats in [-1, 1]) --------------------------------------------------------


def n_samples(seconds: float, sr: int) -> int:
    return int(round(seconds * sr))


def tone(freq: float, n: int, sr: int, amp: float = 1.0, phase: float = 0.0) -> list[float]:
    sin = math.sin
    w = 2.0 * math.pi * freq / sr
    return [amp * sin(w * i + phase) for i in range(n)]


def chirp(f0: float, f1: float, n: int, sr: int) -> list[float]:
    # instantaneous frequency goes linearly f0 -> f1
    sin = math.sin
    k = (f1 - f0) / max(n, 1)
    two_pi_over_sr = 2.0 * math.pi / sr
    return [sin(two_pi_over_sr * (f0 * i + 0.5 * k * i * i)) for i in range(n)]


def white(rng: random.Random, n: int) -> list[float]:
    r = rng.random
    return [2.0 * r() - 1.0 for _ in range(n)]


def brown(rng: random.Random, n: int) -> list[float]:
    out = []
    y = 0.0
    r = rng.random
    for _ in range(n):
        y = 0.995 * y + (2.0 * r() - 1.0)
        out.append(y)
    return normalised(out)


def hiss(rng: random.Random, n: int) -> list[float]:
    w = white(rng, n + 1)
    return [0.5 * (w[i + 1] - w[i]) for i in range(n)]  # first difference: a high-pass


def clicks(rng: random.Random, n: int, sr: int, rate_hz: float) -> list[float]:
    out = [0.0] * n
    decay = math.exp(-1.0 / (0.002 * sr))  # 2 ms
    t = int(rng.uniform(0.0, 1.0 / rate_hz) * sr)
    while t < n:
        a = rng.choice((-1.0, 1.0)) * rng.uniform(0.6, 1.0)
        for j in range(min(int(0.01 * sr), n - t)):
            out[t + j] += a
            a *= decay
        t += max(1, int(sr / rate_hz * rng.uniform(0.7, 1.3)))
    return out


def harmonic(freq: float, n: int, sr: int, partials: int) -> list[float]:
    out = [0.0] * n
    for p in range(1, partials + 1):
        if freq * p >= sr / 2 * 0.9:
            break
        for i, v in enumerate(tone(freq * p, n, sr, 1.0 / p)):
            out[i] += v
    return normalised(out)


def normalised(x: list[float], peak: float = 1.0) -> list[float]:
    m = max((abs(v) for v in x), default=0.0)
    if m == 0.0:
        return x
    g = peak / m
    return [v * g for v in x]


def mix_into(dst: list[float], src: Sequence[float], start: int = 0, gain: float = 1.0) -> None:
    for i, v in enumerate(src[: max(0, len(dst) - start)]):
        dst[start + i] += gain * v


def faded(x: list[float], sr: int, ms: float = 5.0) -> list[float]:
    m = min(len(x) // 2, int(sr * ms / 1000))
    for i in range(m):
        g = i / m
        x[i] *= g
        x[-1 - i] *= g
    return x


def pcm16(x: Sequence[float], peak: float) -> bytes:
    """Floats scaled so that the largest magnitude is `peak` (< 1), as 16-bit little-endian PCM."""
    m = max((abs(v) for v in x), default=0.0)
    g = peak * 32767.0 / m if m > 0 else 0.0
    a = array.array("h", [int(round(v * g)) for v in x])
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def floats(pcm: bytes) -> list[float]:
    a = array.array("h")
    a.frombytes(pcm)
    if sys.byteorder != "little":
        a.byteswap()
    return [v / 32768.0 for v in a]


def resampled(x: list[float], sr_in: int, sr_out: int) -> list[float]:
    """Linear interpolation: enough for test speech (espeak-ng speaks at 22050 Hz)."""
    if sr_in == sr_out or not x:
        return list(x)
    n = int(len(x) * sr_out / sr_in)
    out = []
    for i in range(n):
        t = i * sr_in / sr_out
        j = int(t)
        frac = t - j
        out.append(x[j] * (1 - frac) + x[min(j + 1, len(x) - 1)] * frac)
    return out


__all__ = ["brown", "chirp", "clicks", "faded", "floats", "harmonic", "hiss", "mix_into", "n_samples", "normalised",
           "pcm16", "resampled", "tone", "wav_bytes", "white"]
