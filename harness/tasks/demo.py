"""Small X-ARES tasks generated on the fly, in X-ARES's own on-disk format (DESIGN.md "Data for tests").

The real X-ARES datasets are far too big for test machines; these six tasks are tiny (tens of clips
per split, 0.5-4.5 s each) and deterministic, so tests and the demo can run validate + score of one
encoder on the whole suite in minutes on two CPU cores. Each task has a module
`demo_tasks/<name>_task.py` defining `<name>_config(encoder) -> TaskConfig`, read by X-ARES exactly
like its own task modules.

Format, as X-ARES 0.1.3 reads it (`xares/task.py`, `xares/audiowebdataset.py`):

* one folder per task, `<env>/<task>/`, holding uncompressed tar shards named so that the task
  config's `audio_tar_name_of_split` globs find them: `train-000000.tar`, `valid-000000.tar`,
  `test-000000.tar` (patterns `train*.tar`, ...), or `wds-audio-fold-<k>-000000.tar` for the k-fold
  task; and the marker `.audio_tar_ready`, without which X-ARES tries to download from Zenodo;
* each shard holds, per clip, `<key>.json` (the label) then `<key>.wav` (16-bit PCM mono), adjacent,
  so webdataset groups them into one sample; keys have no dots (webdataset splits the member name
  at the first dot) and are opaque, fixed-width indices: they reach the encoder side of the harness,
  so they must not name the label, and X-ARES's encoded keys (`key + batch index`) must not collide
  across clips;
* tars are byte-reproducible: members in name order, mtime/uid/gid/mode fixed, GNU format, no
  compression, so one seed gives byte-identical shards on any machine with the same espeak-ng.

Besides the six demo tasks, stand-ins for X-ARES's own task modules are generated on request (never
by default): the five hidden tasks (`finger_snap`, `key_scratching`, `liveenv`, `inside_outside_car`,
`subway_broadcast`), LibriSpeech ASR (`librispeech`) and Clotho retrieval (`clotho`). They use the
registry task's folder, the shard names its module globs (`finger_snap_train*.tar`,
`train-clean-100*.tar`, ...) and the json fields its `label_processor` reads (`tag` "T"/"F",
`soundevent` with X-ARES's 28 exact names, `position`, `broadcasting`, the transcript `trans`, five
captions), so X-ARES's unmodified modules score them: `aecc score --tasks finger_snap --data ENV`.

Clips are synthesised with the standard library only (`math`, `random`, `array`, `wave`), from a
`random.Random` seeded by `(seed, task)`, so a task's bytes do not depend on which other tasks are
generated with it. `tiny_digits` is speech spoken by espeak-ng (`scripts/host-tools.sh` installs it).

Generation is idempotent: `<env>/<task>/.taskgen.json` records the manifest (seed, generator
version, espeak-ng version, clip counts, sha256 of every shard), and a task whose manifest matches
and whose shards still hash to it is skipped. A task that is regenerated loses its stale shards and
the `embeddings/` and `checkpoints/` X-ARES derived from the old data (X-ARES caches scores there).

Nothing happens at import time.
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import enum
import hashlib
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import wave
from pathlib import Path
from typing import Callable, Iterator, Sequence

from harness.errors import HarnessError, InfraError, UsageError

#: bump when any task's bytes change for the same seed; part of every manifest
GENERATOR_VERSION = 2
MANIFEST_NAME = ".taskgen.json"
#: X-ARES's `XaresSettings.audio_ready_filename`
AUDIO_READY_NAME = ".audio_tar_ready"
#: what X-ARES writes into a task folder, derived from the audio (stale once the audio changes)
XARES_DERIVED_DIRS = ("embeddings", "checkpoints")
#: fixed tar header fields: 2020-01-01T00:00:00Z
TAR_MTIME = 1577836800
ESPEAK = "espeak-ng"
INSTALL_HINT = "run `scripts/host-tools.sh` (root on Debian: installs it with apt-get) or `apt-get install espeak-ng`"


class TaskName(str, enum.Enum):
    TONES = "tiny_tones"
    ESC = "tiny_esc"
    TAGS = "tiny_tags"
    SED = "tiny_sed"
    DIGITS = "tiny_digits"
    CROP = "tiny_crop"


ALL_TASKS: tuple[str, ...] = tuple(t.value for t in TaskName)


class StandIn(str, enum.Enum):
    """Data for X-ARES's own task modules (registry names), generated only when named."""

    FINGER_SNAP = "finger_snap"
    KEY_SCRATCHING = "key_scratching"
    LIVEENV = "liveenv"
    INSIDE_OUTSIDE_CAR = "inside_outside_car"
    SUBWAY_BROADCAST = "subway_broadcast"
    LIBRISPEECH = "librispeech"
    CLOTHO = "clotho"


#: the five hidden tasks of the paper's Table 1 (dagger), as X-ARES 0.1.3's modules read them
HIDDEN_TASKS: tuple[str, ...] = (StandIn.FINGER_SNAP.value, StandIn.KEY_SCRATCHING.value, StandIn.LIVEENV.value,
                                 StandIn.INSIDE_OUTSIDE_CAR.value, StandIn.SUBWAY_BROADCAST.value)
STAND_INS: tuple[str, ...] = tuple(t.value for t in StandIn)


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """One split: its manifest name, the shard file prefix X-ARES's glob matches, sizes."""

    name: str
    prefix: str
    clips: int
    shards: int = 1

    def shard_names(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}-{i:06d}.tar" for i in range(self.shards))


@dataclasses.dataclass(frozen=True)
class Clip:
    key: str
    sample_rate: int
    pcm: bytes  # 16-bit little-endian mono frames
    label: object  # JSON-serialisable

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    classes: tuple[str, ...]
    splits: tuple[SplitSpec, ...]
    #: (rng, split, index-in-split, label plan entry) -> (sample_rate, float samples, json label)
    make: Callable[..., tuple[int, list[float], object]]
    #: per split: the deterministic, balanced label plan (one entry per clip, in key order)
    plan: Callable[[random.Random, SplitSpec], list]
    tools: tuple[str, ...] = ()

    @property
    def clip_count(self) -> int:
        return sum(s.clips for s in self.splits)


# --- signal helpers (floats in [-1, 1]) --------------------------------------------------------


def _n(seconds: float, sr: int) -> int:
    return int(round(seconds * sr))


def _tone(freq: float, n: int, sr: int, amp: float = 1.0, phase: float = 0.0) -> list[float]:
    sin = math.sin
    w = 2.0 * math.pi * freq / sr
    return [amp * sin(w * i + phase) for i in range(n)]


def _chirp(f0: float, f1: float, n: int, sr: int) -> list[float]:
    # instantaneous frequency goes linearly f0 -> f1
    sin = math.sin
    k = (f1 - f0) / max(n, 1)
    two_pi_over_sr = 2.0 * math.pi / sr
    return [sin(two_pi_over_sr * (f0 * i + 0.5 * k * i * i)) for i in range(n)]


def _white(rng: random.Random, n: int) -> list[float]:
    r = rng.random
    return [2.0 * r() - 1.0 for _ in range(n)]


def _brown(rng: random.Random, n: int) -> list[float]:
    out = []
    y = 0.0
    r = rng.random
    for _ in range(n):
        y = 0.995 * y + (2.0 * r() - 1.0)
        out.append(y)
    return _normalised(out)


def _hiss(rng: random.Random, n: int) -> list[float]:
    w = _white(rng, n + 1)
    return [0.5 * (w[i + 1] - w[i]) for i in range(n)]  # first difference: a high-pass


def _clicks(rng: random.Random, n: int, sr: int, rate_hz: float) -> list[float]:
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


def _harmonic(freq: float, n: int, sr: int, partials: int) -> list[float]:
    out = [0.0] * n
    for p in range(1, partials + 1):
        if freq * p >= sr / 2 * 0.9:
            break
        for i, v in enumerate(_tone(freq * p, n, sr, 1.0 / p)):
            out[i] += v
    return _normalised(out)


def _normalised(x: list[float], peak: float = 1.0) -> list[float]:
    m = max((abs(v) for v in x), default=0.0)
    if m == 0.0:
        return x
    g = peak / m
    return [v * g for v in x]


def _mix_into(dst: list[float], src: Sequence[float], start: int = 0, gain: float = 1.0) -> None:
    for i, v in enumerate(src[: max(0, len(dst) - start)]):
        dst[start + i] += gain * v


def _faded(x: list[float], sr: int, ms: float = 5.0) -> list[float]:
    m = min(len(x) // 2, int(sr * ms / 1000))
    for i in range(m):
        g = i / m
        x[i] *= g
        x[-1 - i] *= g
    return x


def _pcm16(x: Sequence[float], peak: float) -> bytes:
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


# --- label plans: balanced, shuffled deterministically ------------------------------------------


def _balanced(classes: Sequence, n: int, rng: random.Random) -> list:
    """`n` labels cycling through `classes` (counts differ by at most one), in a seeded order."""
    labels = [classes[i % len(classes)] for i in range(n)]
    rng.shuffle(labels)
    return labels


def _single_label_plan(classes: Sequence[str]) -> Callable[[random.Random, SplitSpec], list]:
    return lambda rng, split: _balanced(classes, split.clips, rng)


# --- tiny_tones: tone bands and noise colours, three sample rates ------------------------------

TONE_BANDS = {"tone_low": (220.0, 400.0), "tone_mid": (800.0, 1300.0), "tone_high": (2400.0, 3300.0)}
TONES_CLASSES = ("tone_low", "tone_mid", "tone_high", "noise_white", "noise_brown")
TONES_RATES = (16000, 22050, 8000)


def _make_tones(rng: random.Random, split: SplitSpec, index: int, label: str):
    # 8 kHz only where the class has no energy above 4 kHz anyway, so that the band limit of an
    # upsampled clip is not a cue that crosses classes
    rates = TONES_RATES if label in ("tone_low", "tone_mid", "noise_brown") else TONES_RATES[:2]
    sr = rates[index % len(rates)]
    n = _n(rng.uniform(0.5, 2.0), sr)
    if label in TONE_BANDS:
        lo, hi = TONE_BANDS[label]
        f = rng.uniform(lo, hi)
        x = _tone(f, n, sr, 1.0, rng.uniform(0, 2 * math.pi))
        _mix_into(x, _tone(2 * f, n, sr), gain=rng.uniform(0.05, 0.2))
        _mix_into(x, _brown(rng, n), gain=0.01)
    elif label == "noise_white":
        x = _white(rng, n)
    else:
        x = _brown(rng, n)
    return sr, _faded(x, sr), {"label": label}


# --- tiny_esc: ESC-50-like 3-fold task ------------------------------------------------------------

ESC_CLASSES = ("chirp_up", "chirp_down", "pulse_train", "am_tone")


def _make_esc(rng: random.Random, split: SplitSpec, index: int, label: str):
    sr = 16000
    n = _n(rng.uniform(1.0, 2.5), sr)
    if label == "chirp_up":
        x = _chirp(rng.uniform(300, 600), rng.uniform(2500, 4000), n, sr)
    elif label == "chirp_down":
        x = _chirp(rng.uniform(2500, 4000), rng.uniform(300, 600), n, sr)
    elif label == "pulse_train":
        x = _clicks(rng, n, sr, rng.uniform(6.0, 14.0))
    else:
        f, fm = rng.uniform(500, 2000), rng.uniform(3.0, 8.0)
        carrier = _tone(f, n, sr)
        w = 2 * math.pi * fm / sr
        x = [c * (0.55 + 0.45 * math.sin(w * i)) for i, c in enumerate(carrier)]
    _mix_into(x, _white(rng, n), gain=0.03)
    return sr, _faded(x, sr), {"label": label, "fold": int(split.name)}


# --- tiny_tags: multi-label, every tag present in exactly half of each split ----------------------

TAGS_CLASSES = ("hum", "whistle", "hiss", "click")


def _tag_subsets() -> list[tuple[str, ...]]:
    subsets = []
    for mask in range(1, 2 ** len(TAGS_CLASSES)):
        s = tuple(t for j, t in enumerate(TAGS_CLASSES) if mask >> j & 1)
        if len(s) <= 3:
            subsets.append(s)
    return subsets  # 4 singles + 6 pairs + 4 triples; each tag in 7 of 14


def _tags_plan(rng: random.Random, split: SplitSpec) -> list:
    return _balanced(_tag_subsets(), split.clips, rng)


def _make_tags(rng: random.Random, split: SplitSpec, index: int, tags: tuple[str, ...]):
    sr = 16000
    n = _n(rng.uniform(1.0, 2.0), sr)
    x = [0.0] * n
    for tag in tags:
        if tag == "hum":
            src = _harmonic(rng.uniform(100, 180), n, sr, 6)
        elif tag == "whistle":
            src = _tone(rng.uniform(1500, 3000), n, sr)
        elif tag == "hiss":
            src = _normalised(_hiss(rng, n))
        else:
            src = _clicks(rng, n, sr, rng.uniform(4.0, 9.0))
        _mix_into(x, src, gain=rng.uniform(0.6, 1.0))
    return sr, _faded(x, sr), {"labels": sorted(tags)}


# --- tiny_sed: frame-level events in 3 s clips -------------------------------------------------

SED_CLASSES = ("beep", "buzz", "noise")
SED_CLIP_SECONDS = 3.0


def _sed_plan(rng: random.Random, split: SplitSpec) -> list:
    # per clip: 1-3 events; event classes cycle so each class occurs equally often in a split
    counts = [1 + (i % 3) for i in range(split.clips)]
    rng.shuffle(counts)
    pool = _balanced(SED_CLASSES, sum(counts), rng)
    plan, k = [], 0
    for c in counts:
        plan.append(tuple(pool[k : k + c]))
        k += c
    return plan


def _make_sed(rng: random.Random, split: SplitSpec, index: int, classes: tuple[str, ...]):
    sr = 16000
    n = _n(SED_CLIP_SECONDS, sr)
    x = [0.02 * v for v in _white(rng, n)]
    events = []
    for cls in classes:
        dur = round(rng.uniform(0.3, 1.2), 3)
        onset = round(rng.uniform(0.0, SED_CLIP_SECONDS - dur), 3)
        offset = round(onset + dur, 3)
        m = _n(offset, sr) - _n(onset, sr)
        if cls == "beep":
            src = _tone(rng.uniform(900, 1200), m, sr)
        elif cls == "buzz":
            src = _harmonic(rng.uniform(150, 250), m, sr, 12)
        else:
            src = _white(rng, m)
        _mix_into(x, _faded(src, sr, 3.0), start=_n(onset, sr), gain=rng.uniform(0.5, 0.9))
        events.append({"onset": onset, "offset": offset, "label": cls})
    events.sort(key=lambda e: (e["onset"], e["label"]))
    return sr, x, events


# --- tiny_digits: digit words spoken by espeak-ng ---------------------------------------------

DIGIT_WORDS = ("one", "two", "three", "four", "five")
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


def _espeak(word: str, voice: str, speed: int, pitch: int) -> tuple[int, bytes]:
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


def _make_digits(rng: random.Random, split: SplitSpec, index: int, word: str):
    voice = rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS)
    speed, pitch = rng.randint(120, 200), rng.randint(25, 75)
    sr, pcm = _espeak(word, voice, speed, pitch)
    a = array.array("h")
    a.frombytes(pcm)
    if sys.byteorder != "little":
        a.byteswap()
    speech = [v / 32768.0 for v in a]
    # trim espeak's trailing silence, then place the word after a random lead-in
    end = len(speech)
    while end > 0 and abs(speech[end - 1]) < 1e-3:
        end -= 1
    speech = speech[: min(end, _n(2.5, sr))]
    lead = _n(rng.uniform(0.05, 0.3), sr)
    total = max(_n(0.5, sr), lead + len(speech) + _n(rng.uniform(0.05, 0.2), sr))
    x = [0.003 * v for v in _white(rng, total)]
    _mix_into(x, speech, start=lead)
    return sr, x, {"label": word}


# --- tiny_crop: 2-4.5 s clips for X-ARES's 1 s crops ----------------------------------------------

CROP_CLASSES = ("hum", "whine", "rain")


def _make_crop(rng: random.Random, split: SplitSpec, index: int, label: str):
    sr = 16000
    n = _n(rng.uniform(2.0, 4.5), sr)
    if label == "hum":
        x = _harmonic(rng.uniform(90, 160), n, sr, 8)
    elif label == "whine":
        f = rng.uniform(2000, 3500)
        x = _chirp(f, f * rng.uniform(0.9, 1.1), n, sr)
    else:
        x = _clicks(rng, n, sr, rng.uniform(40, 80))
        _mix_into(x, _white(rng, n), gain=0.1)
    _mix_into(x, _white(rng, n), gain=0.02)
    return sr, _faded(x, sr), {"label": label}


# --- stand-ins for X-ARES's own task modules ------------------------------------------------------
# Each writes what the real module reads (tasks/*_task.py in xares 0.1.3): its folder, the shard names
# its `audio_tar_name_of_split` globs, and the json field its `label_processor` takes. The sounds are
# made up; the format is not.


def _background(rng: random.Random, n: int, gain: float = 0.02) -> list[float]:
    return [gain * v for v in _brown(rng, n)]


# finger_snap (tasks/finger_snap_task.py): {"tag": "T"|"F"}, T = a snap, F = none
TF_CLASSES = ("T", "F")


def _make_finger_snap(rng: random.Random, split: SplitSpec, index: int, tag: str):
    sr = 16000
    n = _n(rng.uniform(0.6, 1.2), sr)
    x = _background(rng, n)
    if tag == "T":  # a snap: a 1-3 kHz burst that dies within ~20 ms
        m = _n(0.04, sr)
        burst = [v * math.exp(-i / (0.006 * sr)) for i, v in enumerate(_white(rng, m))]
        ring = [v * math.exp(-i / (0.01 * sr)) for i, v in enumerate(_tone(rng.uniform(1500, 2800), m, sr))]
        _mix_into(x, burst, start=int(rng.uniform(0.1, 0.5) * n), gain=0.9)
        _mix_into(x, ring, start=int(rng.uniform(0.1, 0.5) * n), gain=0.5)
    else:  # the room without a snap: a soft hum
        _mix_into(x, _harmonic(rng.uniform(90, 140), n, sr, 4), gain=0.05)
    return sr, _faded(x, sr), {"tag": tag}


# key_scratching (tasks/key_scratching_task.py): {"tag": "T"|"F"}, T = a key scraping paint
def _make_key_scratching(rng: random.Random, split: SplitSpec, index: int, tag: str):
    sr = 16000
    n = _n(rng.uniform(0.6, 1.2), sr)
    x = [0.3 * v for v in _brown(rng, n)]  # a parked car's rumble
    if tag == "T":
        f0 = rng.uniform(2500, 3500)
        squeal = _chirp(f0, f0 * rng.uniform(0.8, 1.2), n, sr)
        grit = _hiss(rng, n)
        rate = rng.uniform(8.0, 16.0)
        w = 2 * math.pi * rate / sr
        _mix_into(x, [(0.5 * s + g) * (0.5 + 0.5 * math.sin(w * i)) for i, (s, g) in enumerate(zip(squeal, grit))],
                  gain=0.8)
    return sr, _faded(x, sr), {"tag": tag}


# liveenv (tasks/liveenv_task.py): {"soundevent": <one of 28 names>}, spelt exactly as X-ARES spells
# them, the trailing space of "BabySound " included (any other string is a KeyError in X-ARES)
LIVEENV_CLASSES = ("Airplane", "AirportHall", "Alarm", "BabyCry", "BabyLaugh", "BabySound ", "Car", "Cat",
                   "DiningArea", "Dog", "InsideTrain", "Keyboard", "KnockDoor", "Metro", "MetroWaitingArea",
                   "Motorbike", "Ocean", "Office", "Park", "Poultry", "PublicSquareDance", "Restaurant", "Sheep",
                   "ShoppingMall", "VaccumCleaner", "WaitingRoom", "Washmashine", "Water")


def _make_liveenv(rng: random.Random, split: SplitSpec, index: int, event: str):
    # one tone per class on a log scale, amplitude-modulated at a class-specific rate, over noise
    sr = 16000
    k = LIVEENV_CLASSES.index(event)
    n = _n(rng.uniform(0.5, 1.0), sr)
    f = 180.0 * 2 ** (k / 5.0) * rng.uniform(0.98, 1.02)
    rate = 2.0 + 3.0 * (k % 4)
    w = 2 * math.pi * rate / sr
    x = [v * (0.6 + 0.4 * math.sin(w * i)) for i, v in enumerate(_tone(f, n, sr))]
    _mix_into(x, _white(rng, n) if k % 2 else _brown(rng, n), gain=0.05)
    return sr, _faded(x, sr), {"soundevent": event}


# inside_outside_car (tasks/inside_outside_car_task.py): {"position": "Inside"|"Outside"}
POSITION_CLASSES = ("Inside", "Outside")


def _make_inside_outside_car(rng: random.Random, split: SplitSpec, index: int, position: str):
    sr = 16000
    n = _n(rng.uniform(0.6, 1.2), sr)
    engine = _harmonic(rng.uniform(40, 70), n, sr, 10)
    if position == "Inside":  # muffled: the engine's low partials and a low rumble
        x = [0.7 * v for v in engine]
        _mix_into(x, _brown(rng, n), gain=0.3)
    else:  # open air: broadband traffic hiss over a fainter engine
        x = [0.2 * v for v in engine]
        _mix_into(x, _white(rng, n), gain=0.5)
        _mix_into(x, _hiss(rng, n), gain=0.3)
    return sr, _faded(x, sr), {"position": position}


# subway_broadcast (tasks/subway_broadcast_task.py): {"broadcasting": 0|1} (int() of it), one split
BROADCAST_CLASSES = (0, 1)
BROADCAST_LINES = ("next station central", "please mind the gap", "doors are closing", "change here for line two")


def _make_subway_broadcast(rng: random.Random, split: SplitSpec, index: int, broadcasting: int):
    sr = 16000
    n = _n(rng.uniform(1.5, 2.5), sr)
    x = [0.4 * v for v in _brown(rng, n)]  # the train
    if broadcasting:
        voice = rng.choice(ESPEAK_VOICES)
        speech_sr, pcm = _espeak(rng.choice(BROADCAST_LINES), voice, rng.randint(140, 180), rng.randint(30, 60))
        speech = _resampled(_floats(pcm), speech_sr, sr)[: n - _n(0.1, sr)]
        _mix_into(x, _normalised(speech), start=_n(rng.uniform(0.0, 0.1), sr), gain=0.8)
    return sr, _faded(x, sr), {"broadcasting": broadcasting}


def _floats(pcm: bytes) -> list[float]:
    a = array.array("h")
    a.frombytes(pcm)
    if sys.byteorder != "little":
        a.byteswap()
    return [v / 32768.0 for v in a]


def _resampled(x: list[float], sr_in: int, sr_out: int) -> list[float]:
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


# librispeech (tasks/librispeech_asr_task.py): the whole json is the label, the transcript is "trans"
# (upper case, as X-ARES's own tar maker writes it; X-ARES lower-cases it for WER). Every utterance is
# the carrier phrase and two digit words, "THE NUMBER IS FIVE TWO": a small language with an order.
ASR_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
ASR_CARRIER = "THE NUMBER IS"


def asr_sentence(rng: random.Random) -> str:
    """One sentence of the set's language (the tests train their stand-in LM on such sentences)."""
    return f"{ASR_CARRIER} {rng.choice(ASR_WORDS)} {rng.choice(ASR_WORDS)}"


def _asr_plan(rng: random.Random, split: SplitSpec) -> list:
    """The carrier phrase and two digit words per utterance, every digit equally often over a split."""
    pool = _balanced(ASR_WORDS, 2 * split.clips, rng)
    return [f"{ASR_CARRIER} {pool[2 * i]} {pool[2 * i + 1]}" for i in range(split.clips)]


def _make_librispeech(rng: random.Random, split: SplitSpec, index: int, sentence: str):
    sr = 16000
    speaker = rng.randrange(len(ESPEAK_VOICES) * 2)
    voice = ESPEAK_VOICES[speaker // 2] + ("+f2" if speaker % 2 else "+m3")
    speech_sr, pcm = _espeak(sentence.lower(), voice, rng.randint(150, 190), rng.randint(35, 65))
    speech = _resampled(_floats(pcm), speech_sr, sr)
    end = len(speech)
    while end > 0 and abs(speech[end - 1]) < 1e-3:
        end -= 1
    lead = _n(rng.uniform(0.05, 0.2), sr)
    x = [0.003 * v for v in _white(rng, lead + end + _n(0.1, sr))]
    _mix_into(x, speech[:end], start=lead)
    return sr, x, {"speaker": speaker, "gender": "F" if speaker % 2 else "M", "trans": sentence}


# clotho (tasks/clotho_task.py): exactly five captions per clip (ClapScore groups by five); X-ARES
# takes every value of the json as a caption
CLOTHO_CAPTIONS = {
    "beep": ("a high electronic beep repeats", "an alarm beeps again and again", "short beeps sound at a steady pace",
             "a device keeps beeping", "a shrill tone goes on and off"),
    "hum": ("a low engine hums steadily", "a deep motor drones on", "machinery rumbles at a low pitch",
            "an engine idles with a low hum", "a steady low buzz fills the room"),
    "rain": ("rain falls steadily on a roof", "a shower of noise like heavy rain", "water pours down without a break",
             "a hissing sound like rainfall", "steady rain patters outside"),
    "chirp": ("a bird chirps with rising notes", "a whistle sweeps up in pitch", "a rising tone like a bird call",
              "chirping sounds climb upwards", "a quick upward whistle"),
    "tick": ("a clock ticks regularly", "sharp clicks tick at an even rate", "something taps in a steady rhythm",
             "a metronome clicks on", "regular ticking sounds"),
}
CLOTHO_CLASSES = tuple(CLOTHO_CAPTIONS)


def _make_clotho(rng: random.Random, split: SplitSpec, index: int, kind: str):
    sr = 16000
    n = _n(rng.uniform(1.0, 2.0), sr)
    if kind == "beep":
        f = rng.uniform(1800, 2600)
        x = [v if (i // _n(0.12, sr)) % 2 == 0 else 0.0 for i, v in enumerate(_tone(f, n, sr))]
    elif kind == "hum":
        x = _harmonic(rng.uniform(70, 120), n, sr, 8)
    elif kind == "rain":
        x = _white(rng, n)
    elif kind == "chirp":
        x = _chirp(rng.uniform(1000, 1500), rng.uniform(3000, 4000), n, sr)
    else:
        x = _clicks(rng, n, sr, rng.uniform(3.0, 6.0))
    _mix_into(x, _white(rng, n), gain=0.02)
    captions = list(CLOTHO_CAPTIONS[kind])
    rng.shuffle(captions)
    return sr, _faded(x, sr), {f"caption_{i + 1}": c for i, c in enumerate(captions)}


# --- the suite -------------------------------------------------------------------------------


def _std_splits(train: int, valid: int, test: int, train_shards: int = 1) -> tuple[SplitSpec, ...]:
    return (
        SplitSpec("train", "train", train, train_shards),
        SplitSpec("valid", "valid", valid),
        SplitSpec("test", "test", test),
    )


TASKS: dict[str, TaskSpec] = {
    TaskName.TONES.value: TaskSpec(
        TaskName.TONES.value, TONES_CLASSES, _std_splits(40, 10, 20, train_shards=2),
        _make_tones, _single_label_plan(TONES_CLASSES),
    ),
    TaskName.ESC.value: TaskSpec(
        TaskName.ESC.value, ESC_CLASSES,
        tuple(SplitSpec(str(k), f"wds-audio-fold-{k}", 12) for k in (1, 2, 3)),
        _make_esc, _single_label_plan(ESC_CLASSES),
    ),
    TaskName.TAGS.value: TaskSpec(TaskName.TAGS.value, TAGS_CLASSES, _std_splits(28, 14, 14), _make_tags, _tags_plan),
    TaskName.SED.value: TaskSpec(TaskName.SED.value, SED_CLASSES, _std_splits(24, 9, 9), _make_sed, _sed_plan),
    TaskName.DIGITS.value: TaskSpec(
        TaskName.DIGITS.value, DIGIT_WORDS, _std_splits(40, 10, 20),
        _make_digits, _single_label_plan(DIGIT_WORDS), tools=(ESPEAK,),
    ),
    TaskName.CROP.value: TaskSpec(
        TaskName.CROP.value, CROP_CLASSES, _std_splits(30, 9, 9), _make_crop, _single_label_plan(CROP_CLASSES)
    ),
}


def _two_splits(task: str, train: int, test: int) -> tuple[SplitSpec, ...]:
    """X-ARES's hidden tasks: `<task>_train` and `<task>_test` (the test split is also the valid one)."""
    return (SplitSpec(f"{task}_train", f"{task}_train", train), SplitSpec(f"{task}_test", f"{task}_test", test))


# kNN (Track B) takes the 10 nearest training clips, so a task with do_knn needs at least 10 of them
TASKS.update({
    StandIn.FINGER_SNAP.value: TaskSpec(StandIn.FINGER_SNAP.value, TF_CLASSES, _two_splits("finger_snap", 24, 12),
                                        _make_finger_snap, _single_label_plan(TF_CLASSES)),
    StandIn.KEY_SCRATCHING.value: TaskSpec(StandIn.KEY_SCRATCHING.value, TF_CLASSES,
                                           _two_splits("key_scratching", 24, 12), _make_key_scratching,
                                           _single_label_plan(TF_CLASSES)),
    StandIn.LIVEENV.value: TaskSpec(StandIn.LIVEENV.value, LIVEENV_CLASSES, _two_splits("liveenv", 28, 28),
                                    _make_liveenv, _single_label_plan(LIVEENV_CLASSES)),
    StandIn.INSIDE_OUTSIDE_CAR.value: TaskSpec(StandIn.INSIDE_OUTSIDE_CAR.value, POSITION_CLASSES,
                                               _two_splits("inside_outside_car", 24, 12), _make_inside_outside_car,
                                               _single_label_plan(POSITION_CLASSES)),
    # one split, `subway_broadcast`, is X-ARES's train, valid and test split at once
    StandIn.SUBWAY_BROADCAST.value: TaskSpec(StandIn.SUBWAY_BROADCAST.value, tuple(map(str, BROADCAST_CLASSES)),
                                             (SplitSpec("subway_broadcast", "subway_broadcast", 20),),
                                             _make_subway_broadcast, _single_label_plan(BROADCAST_CLASSES),
                                             tools=(ESPEAK,)),
    StandIn.LIBRISPEECH.value: TaskSpec(StandIn.LIBRISPEECH.value, ASR_WORDS,
                                        (SplitSpec("train-clean-100", "train-clean-100", 16),
                                         SplitSpec("dev-clean", "dev-clean", 6),
                                         SplitSpec("test-clean", "test-clean", 6)),
                                        _make_librispeech, _asr_plan, tools=(ESPEAK,)),
    StandIn.CLOTHO.value: TaskSpec(StandIn.CLOTHO.value, CLOTHO_CLASSES,
                                   (SplitSpec("clotho_development", "clotho_development", 10),
                                    SplitSpec("clotho_evaluation", "clotho_evaluation", 5),
                                    SplitSpec("clotho_validation", "clotho_validation", 5)),
                                   _make_clotho, _single_label_plan(CLOTHO_CLASSES)),
})


# --- writing ---------------------------------------------------------------------------------


def _task_rng(seed: int, task: str, split: str) -> random.Random:
    # str seeds are hashed with SHA-512 by `random`: stable across runs and PYTHONHASHSEED
    return random.Random(f"aecc-taskgen/{GENERATOR_VERSION}/{seed}/{task}/{split}")


def iter_clips(spec: TaskSpec, split: SplitSpec, seed: int) -> Iterator[Clip]:
    rng = _task_rng(seed, spec.name, split.name)
    plan = spec.plan(rng, split)
    for i, entry in enumerate(plan):
        sr, samples, label = spec.make(rng, split, i, entry)
        peak = rng.uniform(0.3, 0.8)
        key = f"{spec.name}-{split.prefix}-{i:04d}".replace(".", "_")
        yield Clip(key=key, sample_rate=sr, pcm=_pcm16(samples, peak), label=label)


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def shard_bytes(clips: Sequence[Clip]) -> bytes:
    """An uncompressed GNU tar of `<key>.json` + `<key>.wav` per clip, members in name order."""
    members = []
    for c in clips:
        members.append((f"{c.key}.json", json.dumps(c.label, sort_keys=True).encode("utf-8")))
        members.append((f"{c.key}.wav", wav_bytes(c.pcm, c.sample_rate)))
    members.sort(key=lambda m: m[0])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            _tar_member(tar, name, data)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # read by the sandbox user (uid 10001) through a bind mount
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _identity(spec: TaskSpec, seed: int, tool_versions: dict[str, str]) -> dict:
    return {
        "task": spec.name,
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "tools": {t: tool_versions[t] for t in spec.tools},
    }


def _existing_manifest(task_dir: Path, identity: dict) -> dict | None:
    """The stored manifest if it matches `identity` and every shard still hashes to it."""
    try:
        stored = json.loads((task_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or {k: stored.get(k) for k in identity} != identity:
        return None
    if not (task_dir / AUDIO_READY_NAME).is_file():
        return None
    try:
        for split in stored["splits"].values():
            for name, digest in split["shards"].items():
                if _sha256(task_dir / name) != digest:
                    return None
    except (OSError, KeyError, AttributeError, TypeError):
        return None
    return stored


def _clear_task_dir(task_dir: Path, spec: TaskSpec) -> None:
    """Remove what a previous generation (or X-ARES, from it) left: marker, manifest, shards, caches."""
    for name in (AUDIO_READY_NAME, MANIFEST_NAME):
        (task_dir / name).unlink(missing_ok=True)
    for split in spec.splits:
        for stale in task_dir.glob(f"{split.prefix}*.tar"):
            stale.unlink()
    for derived in XARES_DERIVED_DIRS:
        d = task_dir / derived
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)


def generate_task(env_dir: Path, spec: TaskSpec, seed: int, tool_versions: dict[str, str]) -> dict:
    task_dir = Path(env_dir) / spec.name
    identity = _identity(spec, seed, tool_versions)
    stored = _existing_manifest(task_dir, identity)
    if stored is not None:
        return stored
    task_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(task_dir, 0o755)
    _clear_task_dir(task_dir, spec)
    manifest = dict(identity, classes=list(spec.classes), splits={})
    sample_rates: set[int] = set()
    seconds = 0.0
    for split in spec.splits:
        clips = list(iter_clips(spec, split, seed))
        sample_rates.update(c.sample_rate for c in clips)
        seconds += sum(c.seconds for c in clips)
        per = math.ceil(len(clips) / split.shards)
        shards = {}
        for i, name in enumerate(split.shard_names()):
            path = task_dir / name
            _write_atomic(path, shard_bytes(clips[i * per : (i + 1) * per]))
            shards[name] = _sha256(path)
        manifest["splits"][split.name] = {"clips": len(clips), "shards": shards}
    manifest["sample_rates"] = sorted(sample_rates)
    manifest["audio_seconds"] = round(seconds, 3)
    _write_atomic(task_dir / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
    _write_atomic(task_dir / AUDIO_READY_NAME, b"")  # last: X-ARES reads the folder only once it is there
    return manifest


def _resolve_tasks(tasks: Sequence[str] | None) -> list[TaskSpec]:
    names = list(ALL_TASKS if tasks is None else tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise UsageError(
            "unknown task name" if unknown else "no task given",
            expected=f"one or more of {', '.join(TASKS)}",
            found=", ".join(unknown) if unknown else "an empty list",
            fix="pick names from the list above, or leave --tasks out for all of them",
        )
    return [TASKS[t] for t in dict.fromkeys(names)]


def _tool_versions(specs: Sequence[TaskSpec]) -> dict[str, str]:
    versions = {}
    for tool in sorted({t for s in specs for t in s.tools}):
        assert tool == ESPEAK, tool
        version = espeak_version()
        if version is None:
            users = ", ".join(s.name for s in specs if tool in s.tools)
            raise InfraError(
                f"{tool} is not installed; task {users} needs it to speak",
                expected=f"`{tool}` on PATH",
                found=f"no `{tool}` in PATH={os.environ.get('PATH', '')}",
                fix=f"{INSTALL_HINT}; or leave {users} out (--tasks)",
            )
        versions[tool] = version
    return versions


def generate(env_dir: Path, tasks: Sequence[str] | None = None, seed: int = 0) -> dict:
    """Generate `tasks` (default: all) under `env_dir`; returns {task: manifest}.

    A manifest holds the task's identity (task, generator version, seed, tool versions), `classes`,
    `splits` ({split: {"clips": n, "shards": {file name: sha256}}}), `sample_rates` and
    `audio_seconds`. Tasks already generated with the same identity are skipped (their shards are
    re-hashed, not rewritten).

    Raises:
        UsageError: an unknown task name or a negative seed.
        InfraError: a host tool (espeak-ng) is missing or fails.
    """
    if not isinstance(seed, int) or seed < 0:
        raise UsageError("seed must be a non-negative integer", expected=">= 0", found=repr(seed))
    specs = _resolve_tasks(tasks)
    tool_versions = _tool_versions(specs)  # fail before writing anything
    env_dir = Path(env_dir)
    env_dir.mkdir(parents=True, exist_ok=True)
    return {spec.name: generate_task(env_dir, spec, seed, tool_versions) for spec in specs}


# --- CLI -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.tasks.demo",
        description="Generate the tiny X-ARES-format test tasks (task modules: demo_tasks/<task>_task.py; "
                    "stand-ins for X-ARES's own modules by their registry names).",
    )
    parser.add_argument("env_dir", type=Path, help="X-ARES env root; one folder per task is written under it")
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help=f"default: all of {' '.join(ALL_TASKS)}; also: {' '.join(STAND_INS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the manifests as JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        manifests = generate(args.env_dir, args.tasks, args.seed)
    except HarnessError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(manifests, indent=1, sort_keys=True))
        return 0
    total = 0
    for name, m in manifests.items():
        size = sum((args.env_dir / name / f).stat().st_size for s in m["splits"].values() for f in s["shards"])
        total += size
        counts = " ".join(f"{s}={v['clips']}" for s, v in m["splits"].items())
        print(f"{name:12s} {counts:28s} {m['audio_seconds']:7.1f} s audio  {size / 1e6:5.2f} MB  sr={m['sample_rates']}")
    print(f"{len(manifests)} tasks, {total / 1e6:.2f} MB in {args.env_dir} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
