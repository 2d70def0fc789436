"""The six demo tasks (`tiny_tones` ... `tiny_crop`): what each class sounds like and how its splits are made.

These are the tasks `demo_tasks/<name>_task.py` describe to X-ARES and the demo and most tests score:
small enough to run validate + score of one encoder on two CPU cores in minutes, yet separable by a
spectral encoder, with the label shapes X-ARES's task kinds need (single label, k-fold, multi-label,
frame-level events, speech, long clips cropped). Their sounds are defined here, apart from the
stand-ins for X-ARES's own modules (`harness.demodata.standins`) and from the writer
(`harness.demodata.shards`), which treats every task alike.
"""

from __future__ import annotations

import array
import math
import random
import sys

from harness.demodata.signals import (
    brown,
    chirp,
    clicks,
    faded,
    harmonic,
    hiss,
    mix_into,
    n_samples,
    normalised,
    tone,
    white,
)
from harness.demodata.specs import SplitSpec, TaskName, TaskSpec, balanced, single_label_plan, std_splits
from harness.demodata.speech import ESPEAK, ESPEAK_VARIANTS, ESPEAK_VOICES, espeak


# --- tiny_tones: tone bands and noise colours, three sample rates ------------------------------

TONE_BANDS = {"tone_low": (220.0, 400.0), "tone_mid": (800.0, 1300.0), "tone_high": (2400.0, 3300.0)}
TONES_CLASSES = ("tone_low", "tone_mid", "tone_high", "noise_white", "noise_brown")
TONES_RATES = (16000, 22050, 8000)


def make_tones(rng: random.Random, split: SplitSpec, index: int, label: str):
    # 8 kHz only where the class has no energy above 4 kHz anyway, so that the band limit of an
    # upsampled clip is not a cue that crosses classes
    rates = TONES_RATES if label in ("tone_low", "tone_mid", "noise_brown") else TONES_RATES[:2]
    sr = rates[index % len(rates)]
    n = n_samples(rng.uniform(0.5, 2.0), sr)
    if label in TONE_BANDS:
        lo, hi = TONE_BANDS[label]
        f = rng.uniform(lo, hi)
        x = tone(f, n, sr, 1.0, rng.uniform(0, 2 * math.pi))
        mix_into(x, tone(2 * f, n, sr), gain=rng.uniform(0.05, 0.2))
        mix_into(x, brown(rng, n), gain=0.01)
    elif label == "noise_white":
        x = white(rng, n)
    else:
        x = brown(rng, n)
    return sr, faded(x, sr), {"label": label}


# --- tiny_esc: ESC-50-like 3-fold task ------------------------------------------------------------

ESC_CLASSES = ("chirp_up", "chirp_down", "pulse_train", "am_tone")


def _make_esc(rng: random.Random, split: SplitSpec, index: int, label: str):
    sr = 16000
    n = n_samples(rng.uniform(1.0, 2.5), sr)
    if label == "chirp_up":
        x = chirp(rng.uniform(300, 600), rng.uniform(2500, 4000), n, sr)
    elif label == "chirp_down":
        x = chirp(rng.uniform(2500, 4000), rng.uniform(300, 600), n, sr)
    elif label == "pulse_train":
        x = clicks(rng, n, sr, rng.uniform(6.0, 14.0))
    else:
        f, fm = rng.uniform(500, 2000), rng.uniform(3.0, 8.0)
        carrier = tone(f, n, sr)
        w = 2 * math.pi * fm / sr
        x = [c * (0.55 + 0.45 * math.sin(w * i)) for i, c in enumerate(carrier)]
    mix_into(x, white(rng, n), gain=0.03)
    return sr, faded(x, sr), {"label": label, "fold": int(split.name)}


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
    return balanced(_tag_subsets(), split.clips, rng)


def _make_tags(rng: random.Random, split: SplitSpec, index: int, tags: tuple[str, ...]):
    sr = 16000
    n = n_samples(rng.uniform(1.0, 2.0), sr)
    x = [0.0] * n
    for tag in tags:
        if tag == "hum":
            src = harmonic(rng.uniform(100, 180), n, sr, 6)
        elif tag == "whistle":
            src = tone(rng.uniform(1500, 3000), n, sr)
        elif tag == "hiss":
            src = normalised(hiss(rng, n))
        else:
            src = clicks(rng, n, sr, rng.uniform(4.0, 9.0))
        mix_into(x, src, gain=rng.uniform(0.6, 1.0))
    return sr, faded(x, sr), {"labels": sorted(tags)}


# --- tiny_sed: frame-level events in 3 s clips -------------------------------------------------

SED_CLASSES = ("beep", "buzz", "noise")
SED_CLIP_SECONDS = 3.0


def _sed_plan(rng: random.Random, split: SplitSpec) -> list:
    # per clip: 1-3 events; event classes cycle so each class occurs equally often in a split
    counts = [1 + (i % 3) for i in range(split.clips)]
    rng.shuffle(counts)
    pool = balanced(SED_CLASSES, sum(counts), rng)
    plan, k = [], 0
    for c in counts:
        plan.append(tuple(pool[k : k + c]))
        k += c
    return plan


def _make_sed(rng: random.Random, split: SplitSpec, index: int, classes: tuple[str, ...]):
    sr = 16000
    n = n_samples(SED_CLIP_SECONDS, sr)
    x = [0.02 * v for v in white(rng, n)]
    events = []
    for cls in classes:
        dur = round(rng.uniform(0.3, 1.2), 3)
        onset = round(rng.uniform(0.0, SED_CLIP_SECONDS - dur), 3)
        offset = round(onset + dur, 3)
        m = n_samples(offset, sr) - n_samples(onset, sr)
        if cls == "beep":
            src = tone(rng.uniform(900, 1200), m, sr)
        elif cls == "buzz":
            src = harmonic(rng.uniform(150, 250), m, sr, 12)
        else:
            src = white(rng, m)
        mix_into(x, faded(src, sr, 3.0), start=n_samples(onset, sr), gain=rng.uniform(0.5, 0.9))
        events.append({"onset": onset, "offset": offset, "label": cls})
    events.sort(key=lambda e: (e["onset"], e["label"]))
    return sr, x, events


# --- tiny_digits: digit words spoken by espeak-ng ---------------------------------------------

DIGIT_WORDS = ("one", "two", "three", "four", "five")


def _make_digits(rng: random.Random, split: SplitSpec, index: int, word: str):
    voice = rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS)
    speed, pitch = rng.randint(120, 200), rng.randint(25, 75)
    sr, pcm = espeak(word, voice, speed, pitch)
    a = array.array("h")
    a.frombytes(pcm)
    if sys.byteorder != "little":
        a.byteswap()
    speech = [v / 32768.0 for v in a]
    # trim espeak's trailing silence, then place the word after a random lead-in
    end = len(speech)
    while end > 0 and abs(speech[end - 1]) < 1e-3:
        end -= 1
    speech = speech[: min(end, n_samples(2.5, sr))]
    lead = n_samples(rng.uniform(0.05, 0.3), sr)
    total = max(n_samples(0.5, sr), lead + len(speech) + n_samples(rng.uniform(0.05, 0.2), sr))
    x = [0.003 * v for v in white(rng, total)]
    mix_into(x, speech, start=lead)
    return sr, x, {"label": word}


# --- tiny_crop: 2-4.5 s clips for X-ARES's 1 s crops ----------------------------------------------

CROP_CLASSES = ("hum", "whine", "rain")


def _make_crop(rng: random.Random, split: SplitSpec, index: int, label: str):
    sr = 16000
    n = n_samples(rng.uniform(2.0, 4.5), sr)
    if label == "hum":
        x = harmonic(rng.uniform(90, 160), n, sr, 8)
    elif label == "whine":
        f = rng.uniform(2000, 3500)
        x = chirp(f, f * rng.uniform(0.9, 1.1), n, sr)
    else:
        x = clicks(rng, n, sr, rng.uniform(40, 80))
        mix_into(x, white(rng, n), gain=0.1)
    mix_into(x, white(rng, n), gain=0.02)
    return sr, faded(x, sr), {"label": label}


TINY_TASKS: dict[str, TaskSpec] = {
    TaskName.TONES.value: TaskSpec(
        TaskName.TONES.value, TONES_CLASSES, std_splits(40, 10, 20, train_shards=2),
        make_tones, single_label_plan(TONES_CLASSES),
    ),
    TaskName.ESC.value: TaskSpec(
        TaskName.ESC.value, ESC_CLASSES,
        tuple(SplitSpec(str(k), f"wds-audio-fold-{k}", 12) for k in (1, 2, 3)),
        _make_esc, single_label_plan(ESC_CLASSES),
    ),
    TaskName.TAGS.value: TaskSpec(TaskName.TAGS.value, TAGS_CLASSES, std_splits(28, 14, 14), _make_tags, _tags_plan),
    TaskName.SED.value: TaskSpec(TaskName.SED.value, SED_CLASSES, std_splits(24, 9, 9), _make_sed, _sed_plan),
    TaskName.DIGITS.value: TaskSpec(
        TaskName.DIGITS.value, DIGIT_WORDS, std_splits(40, 10, 20),
        _make_digits, single_label_plan(DIGIT_WORDS), tools=(ESPEAK,),
    ),
    TaskName.CROP.value: TaskSpec(
        TaskName.CROP.value, CROP_CLASSES, std_splits(30, 9, 9), _make_crop, single_label_plan(CROP_CLASSES)
    ),
}


__all__ = ["CROP_CLASSES", "DIGIT_WORDS", "ESC_CLASSES", "SED_CLASSES", "SED_CLIP_SECONDS", "TAGS_CLASSES",
           "TINY_TASKS", "TONES_CLASSES", "TONES_RATES", "TONE_BANDS", "make_tones"]
