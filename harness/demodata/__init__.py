"""Small X-ARES tasks generated on the fly, in X-ARES's own on-disk format (DESIGN.md "Data for tests").

Why a package of its own: making test and demo data is not part of the task registry
(`harness.tasks`, which says what tasks exist and where their data is); it is a tool the tests, the
bench and `make demo-data` run to create data that the registry's tasks then read.

The real X-ARES datasets are far too big for test machines; these six tasks are tiny (tens of clips
per split, 0.5-4.5 s each) and deterministic, so tests and the demo can run validate + score of one
encoder on the whole suite in minutes on two CPU cores. Each task has a module
`demo_tasks/<name>_task.py` defining `<name>_config(encoder) -> TaskConfig`, read by X-ARES exactly
like its own task modules.

Besides the six demo tasks, stand-ins for X-ARES's own task modules are generated on request (never
by default): the five hidden tasks (`finger_snap`, `key_scratching`, `liveenv`, `inside_outside_car`,
`subway_broadcast`), LibriSpeech ASR (`librispeech`) and Clotho retrieval (`clotho`), so that X-ARES's
unmodified modules score them: `aecc score --tasks finger_snap --data ENV`.

Clips are synthesised with the standard library only, from a `random.Random` seeded by
`(seed, task)`, so a task's bytes do not depend on which other tasks are generated with it.
`tiny_digits` and the speech stand-ins are spoken by espeak-ng (`scripts/host-tools.sh` installs it).

Modules, one job each:

* `signals`: the sound primitives (tones, chirps, noises, clicks) and PCM/wav encoding;
* `speech`: espeak-ng, the one host tool;
* `specs`: what a task is (names, splits, clips, balanced label plans);
* `tiny`: the six demo tasks; `standins`: the stand-ins for X-ARES's own modules;
* `shards`: writing tasks in X-ARES's format, with the manifest that makes it idempotent (`generate`);
* `cli` (`python -m harness.demodata ENV [--tasks ...] [--seed N] [--json]`): the command line.

This module re-exports what the tests and the bench use. Nothing happens at import time.
"""

from __future__ import annotations

from harness.demodata.shards import (
    AUDIO_READY_NAME,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    TAR_MTIME,
    TASKS,
    XARES_DERIVED_DIRS,
    generate,
    generate_task,
    iter_clips,
    shard_bytes,
)
from harness.demodata.signals import wav_bytes
from harness.demodata.specs import (
    ALL_TASKS,
    HIDDEN_TASKS,
    STAND_INS,
    Clip,
    SplitSpec,
    StandIn,
    TaskName,
    TaskSpec,
)
from harness.demodata.speech import ESPEAK, INSTALL_HINT, espeak_version
from harness.demodata.standins import (
    ASR_CARRIER,
    ASR_WORDS,
    BROADCAST_CLASSES,
    CLOTHO_CLASSES,
    LIVEENV_CLASSES,
    POSITION_CLASSES,
    TF_CLASSES,
    asr_sentence,
)
from harness.demodata.tiny import (
    CROP_CLASSES,
    DIGIT_WORDS,
    ESC_CLASSES,
    SED_CLASSES,
    TAGS_CLASSES,
    TONES_CLASSES,
)

__all__ = [
    "ALL_TASKS", "ASR_CARRIER", "ASR_WORDS", "AUDIO_READY_NAME", "BROADCAST_CLASSES", "CLOTHO_CLASSES", "CROP_CLASSES",
    "Clip", "DIGIT_WORDS", "ESC_CLASSES", "ESPEAK", "GENERATOR_VERSION", "HIDDEN_TASKS", "INSTALL_HINT",
    "LIVEENV_CLASSES", "MANIFEST_NAME", "POSITION_CLASSES", "SED_CLASSES", "STAND_INS", "SplitSpec", "StandIn",
    "TAGS_CLASSES", "TAR_MTIME", "TASKS", "TF_CLASSES", "TONES_CLASSES", "TaskName", "TaskSpec", "XARES_DERIVED_DIRS",
    "asr_sentence", "espeak_version", "generate", "generate_task", "iter_clips", "shard_bytes", "wav_bytes",
]
