"""The bench's larger suite: one task of about 37 minutes of generated audio (1800 clips of the tiny
tones classes, 0.5 to 2 s each), so that what a submission costs regardless of task size (images,
container starts, torch imports) no longer dominates the comparison with bare X-ARES.

    python bench/large_suite.py ENV_DIR      # idempotent: an unchanged suite is re-hashed, not rewritten
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASK_FILE = REPO / "bench" / "tasks" / "large_tones_task.py"
NAME = "large_tones"
SPLITS = (1200, 300, 300)  # train, valid, test


def spec():
    from harness.demodata.specs import TaskSpec, single_label_plan, std_splits
    from harness.demodata.tiny import TONES_CLASSES, make_tones

    train, valid, test = SPLITS
    return TaskSpec(NAME, TONES_CLASSES, std_splits(train, valid, test, train_shards=4),
                    make_tones, single_label_plan(TONES_CLASSES))


def generate(env_dir: Path, seed: int = 0) -> dict:
    from harness import demodata

    manifest = demodata.generate_task(Path(env_dir), spec(), seed, {})
    (Path(env_dir) / NAME).chmod(0o755)
    return manifest


if __name__ == "__main__":
    out = generate(Path(sys.argv[1]))
    print(f"{NAME}: {out.get('audio_seconds', 0) / 60:.1f} min of audio in {Path(sys.argv[1]) / NAME}")
