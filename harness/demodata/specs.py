"""What a generated task is: its names, splits, clips and label plans, independent of any one task.

The six demo tasks (`harness.demodata.tiny`), the stand-ins for X-ARES's own task modules
(`harness.demodata.standins`) and the shard writer (`harness.demodata.shards`) all speak in these
types, so they live in a module of their own that imports neither. The label plans here are
balanced and shuffled by the task's seeded `random.Random`, so a split's labels are a function of the
seed alone.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from typing import Callable, Sequence


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


# --- label plans: balanced, shuffled deterministically ------------------------------------------


def balanced(classes: Sequence, n: int, rng: random.Random) -> list:
    """`n` labels cycling through `classes` (counts differ by at most one), in a seeded order."""
    labels = [classes[i % len(classes)] for i in range(n)]
    rng.shuffle(labels)
    return labels


def single_label_plan(classes: Sequence[str]) -> Callable[[random.Random, SplitSpec], list]:
    return lambda rng, split: balanced(classes, split.clips, rng)


def std_splits(train: int, valid: int, test: int, train_shards: int = 1) -> tuple[SplitSpec, ...]:
    return (
        SplitSpec("train", "train", train, train_shards),
        SplitSpec("valid", "valid", valid),
        SplitSpec("test", "test", test),
    )


def two_splits(task: str, train: int, test: int) -> tuple[SplitSpec, ...]:
    """X-ARES's hidden tasks: `<task>_train` and `<task>_test` (the test split is also the valid one)."""
    return (SplitSpec(f"{task}_train", f"{task}_train", train), SplitSpec(f"{task}_test", f"{task}_test", test))


__all__ = ["ALL_TASKS", "HIDDEN_TASKS", "STAND_INS", "Clip", "SplitSpec", "StandIn", "TaskName", "TaskSpec", "balanced",
           "single_label_plan", "std_splits", "two_splits"]
