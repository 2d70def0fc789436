"""Stand-ins for X-ARES's own task modules: data its unmodified modules read, generated only when named.

The real datasets of the five hidden tasks, LibriSpeech and Clotho are far too big (or not public),
yet the harness must prove it scores X-ARES's own task modules, not only the demo's. Each stand-in
writes what the real module reads (tasks/*_task.py in xares 0.1.3): its folder, the shard names its
`audio_tar_name_of_split` globs, and the json field its `label_processor` takes (`tag`,
`soundevent` with X-ARES's 28 exact names, `position`, `broadcasting`, the transcript `trans`, five
captions). The sounds are made up; the format is not. Kept apart from the six demo tasks
(`harness.demodata.tiny`) because they follow another module's format, not the demo's.
"""

from __future__ import annotations

import math
import random

from harness.demodata.signals import (
    brown,
    chirp,
    clicks,
    faded,
    floats,
    harmonic,
    hiss,
    mix_into,
    n_samples,
    normalised,
    resampled,
    tone,
    white,
)
from harness.demodata.specs import SplitSpec, StandIn, TaskSpec, balanced, single_label_plan, two_splits
from harness.demodata.speech import ESPEAK, ESPEAK_VOICES, espeak


def _background(rng: random.Random, n: int, gain: float = 0.02) -> list[float]:
    return [gain * v for v in brown(rng, n)]


# finger_snap (tasks/finger_snap_task.py): {"tag": "T"|"F"}, T = a snap, F = none
TF_CLASSES = ("T", "F")


def _make_finger_snap(rng: random.Random, split: SplitSpec, index: int, tag: str):
    sr = 16000
    n = n_samples(rng.uniform(0.6, 1.2), sr)
    x = _background(rng, n)
    if tag == "T":  # a snap: a 1-3 kHz burst that dies within ~20 ms
        m = n_samples(0.04, sr)
        burst = [v * math.exp(-i / (0.006 * sr)) for i, v in enumerate(white(rng, m))]
        ring = [v * math.exp(-i / (0.01 * sr)) for i, v in enumerate(tone(rng.uniform(1500, 2800), m, sr))]
        mix_into(x, burst, start=int(rng.uniform(0.1, 0.5) * n), gain=0.9)
        mix_into(x, ring, start=int(rng.uniform(0.1, 0.5) * n), gain=0.5)
    else:  # the room without a snap: a soft hum
        mix_into(x, harmonic(rng.uniform(90, 140), n, sr, 4), gain=0.05)
    return sr, faded(x, sr), {"tag": tag}


# key_scratching (tasks/key_scratching_task.py): {"tag": "T"|"F"}, T = a key scraping paint
def _make_key_scratching(rng: random.Random, split: SplitSpec, index: int, tag: str):
    sr = 16000
    n = n_samples(rng.uniform(0.6, 1.2), sr)
    x = [0.3 * v for v in brown(rng, n)]  # a parked car's rumble
    if tag == "T":
        f0 = rng.uniform(2500, 3500)
        squeal = chirp(f0, f0 * rng.uniform(0.8, 1.2), n, sr)
        grit = hiss(rng, n)
        rate = rng.uniform(8.0, 16.0)
        w = 2 * math.pi * rate / sr
        mix_into(x, [(0.5 * s + g) * (0.5 + 0.5 * math.sin(w * i)) for i, (s, g) in enumerate(zip(squeal, grit))],
                  gain=0.8)
    return sr, faded(x, sr), {"tag": tag}


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
    n = n_samples(rng.uniform(0.5, 1.0), sr)
    f = 180.0 * 2 ** (k / 5.0) * rng.uniform(0.98, 1.02)
    rate = 2.0 + 3.0 * (k % 4)
    w = 2 * math.pi * rate / sr
    x = [v * (0.6 + 0.4 * math.sin(w * i)) for i, v in enumerate(tone(f, n, sr))]
    mix_into(x, white(rng, n) if k % 2 else brown(rng, n), gain=0.05)
    return sr, faded(x, sr), {"soundevent": event}


# inside_outside_car (tasks/inside_outside_car_task.py): {"position": "Inside"|"Outside"}
POSITION_CLASSES = ("Inside", "Outside")


def _make_inside_outside_car(rng: random.Random, split: SplitSpec, index: int, position: str):
    sr = 16000
    n = n_samples(rng.uniform(0.6, 1.2), sr)
    engine = harmonic(rng.uniform(40, 70), n, sr, 10)
    if position == "Inside":  # muffled: the engine's low partials and a low rumble
        x = [0.7 * v for v in engine]
        mix_into(x, brown(rng, n), gain=0.3)
    else:  # open air: broadband traffic hiss over a fainter engine
        x = [0.2 * v for v in engine]
        mix_into(x, white(rng, n), gain=0.5)
        mix_into(x, hiss(rng, n), gain=0.3)
    return sr, faded(x, sr), {"position": position}


# subway_broadcast (tasks/subway_broadcast_task.py): {"broadcasting": 0|1} (int() of it), one split
BROADCAST_CLASSES = (0, 1)
BROADCAST_LINES = ("next station central", "please mind the gap", "doors are closing", "change here for line two")


def _make_subway_broadcast(rng: random.Random, split: SplitSpec, index: int, broadcasting: int):
    sr = 16000
    n = n_samples(rng.uniform(1.5, 2.5), sr)
    x = [0.4 * v for v in brown(rng, n)]  # the train
    if broadcasting:
        voice = rng.choice(ESPEAK_VOICES)
        speech_sr, pcm = espeak(rng.choice(BROADCAST_LINES), voice, rng.randint(140, 180), rng.randint(30, 60))
        speech = resampled(floats(pcm), speech_sr, sr)[: n - n_samples(0.1, sr)]
        mix_into(x, normalised(speech), start=n_samples(rng.uniform(0.0, 0.1), sr), gain=0.8)
    return sr, faded(x, sr), {"broadcasting": broadcasting}


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
    pool = balanced(ASR_WORDS, 2 * split.clips, rng)
    return [f"{ASR_CARRIER} {pool[2 * i]} {pool[2 * i + 1]}" for i in range(split.clips)]


def _make_librispeech(rng: random.Random, split: SplitSpec, index: int, sentence: str):
    sr = 16000
    speaker = rng.randrange(len(ESPEAK_VOICES) * 2)
    voice = ESPEAK_VOICES[speaker // 2] + ("+f2" if speaker % 2 else "+m3")
    speech_sr, pcm = espeak(sentence.lower(), voice, rng.randint(150, 190), rng.randint(35, 65))
    speech = resampled(floats(pcm), speech_sr, sr)
    end = len(speech)
    while end > 0 and abs(speech[end - 1]) < 1e-3:
        end -= 1
    lead = n_samples(rng.uniform(0.05, 0.2), sr)
    x = [0.003 * v for v in white(rng, lead + end + n_samples(0.1, sr))]
    mix_into(x, speech[:end], start=lead)
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
    n = n_samples(rng.uniform(1.0, 2.0), sr)
    if kind == "beep":
        f = rng.uniform(1800, 2600)
        x = [v if (i // n_samples(0.12, sr)) % 2 == 0 else 0.0 for i, v in enumerate(tone(f, n, sr))]
    elif kind == "hum":
        x = harmonic(rng.uniform(70, 120), n, sr, 8)
    elif kind == "rain":
        x = white(rng, n)
    elif kind == "chirp":
        x = chirp(rng.uniform(1000, 1500), rng.uniform(3000, 4000), n, sr)
    else:
        x = clicks(rng, n, sr, rng.uniform(3.0, 6.0))
    mix_into(x, white(rng, n), gain=0.02)
    captions = list(CLOTHO_CAPTIONS[kind])
    rng.shuffle(captions)
    return sr, faded(x, sr), {f"caption_{i + 1}": c for i, c in enumerate(captions)}


# kNN (Track B) takes the 10 nearest training clips, so a task with do_knn needs at least 10 of them
STAND_IN_TASKS: dict[str, TaskSpec] = {
    StandIn.FINGER_SNAP.value: TaskSpec(StandIn.FINGER_SNAP.value, TF_CLASSES, two_splits("finger_snap", 24, 12),
                                        _make_finger_snap, single_label_plan(TF_CLASSES)),
    StandIn.KEY_SCRATCHING.value: TaskSpec(StandIn.KEY_SCRATCHING.value, TF_CLASSES,
                                           two_splits("key_scratching", 24, 12), _make_key_scratching,
                                           single_label_plan(TF_CLASSES)),
    StandIn.LIVEENV.value: TaskSpec(StandIn.LIVEENV.value, LIVEENV_CLASSES, two_splits("liveenv", 28, 28),
                                    _make_liveenv, single_label_plan(LIVEENV_CLASSES)),
    StandIn.INSIDE_OUTSIDE_CAR.value: TaskSpec(StandIn.INSIDE_OUTSIDE_CAR.value, POSITION_CLASSES,
                                               two_splits("inside_outside_car", 24, 12), _make_inside_outside_car,
                                               single_label_plan(POSITION_CLASSES)),
    # one split, `subway_broadcast`, is X-ARES's train, valid and test split at once
    StandIn.SUBWAY_BROADCAST.value: TaskSpec(StandIn.SUBWAY_BROADCAST.value, tuple(map(str, BROADCAST_CLASSES)),
                                             (SplitSpec("subway_broadcast", "subway_broadcast", 20),),
                                             _make_subway_broadcast, single_label_plan(BROADCAST_CLASSES),
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
                                   _make_clotho, single_label_plan(CLOTHO_CLASSES)),
}


__all__ = ["ASR_CARRIER", "ASR_WORDS", "BROADCAST_CLASSES", "BROADCAST_LINES", "CLOTHO_CAPTIONS", "CLOTHO_CLASSES",
           "LIVEENV_CLASSES", "POSITION_CLASSES", "STAND_IN_TASKS", "TF_CLASSES", "asr_sentence"]
