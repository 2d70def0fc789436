"""The bench's generated suites beyond the demo: one task each, of the tiny tones classes (0.5 to
2 s clips), so that what a submission costs regardless of task size (images, container starts,
torch imports) no longer dominates the comparison with bare X-ARES.

  large   1800 clips, about 37 minutes of audio (bench/tasks/large_tones_task.py)
  hours   9000 clips, about 3.1 hours (bench/tasks/hours_tones_task.py): five times `large` in
          every split and shard count, with the same clip distribution, so that the two suites
          differ only in the amount of audio and a straight line through their times separates
          what a run costs per audio-hour from what it costs once

    python bench/large_suite.py ENV_DIR [large|hours]   # idempotent: an unchanged suite is re-hashed, not rewritten
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclasses.dataclass(frozen=True)
class Suite:
    key: str  # the bench group's metric prefix
    name: str  # the task's name: its folder in the env and its TaskConfig.name
    task_file: Path
    splits: tuple[int, int, int]  # train, valid, test clips
    train_shards: int
    title: str

    def spec(self, splits: tuple[int, int, int] | None = None):
        """The task's generator spec; `splits` shrinks it (tests, smoke runs) without renaming it."""
        from harness.demodata.specs import TaskSpec, single_label_plan, std_splits
        from harness.demodata.tiny import TONES_CLASSES, make_tones

        train, valid, test = splits or self.splits
        return TaskSpec(self.name, TONES_CLASSES, std_splits(train, valid, test, train_shards=self.train_shards),
                        make_tones, single_label_plan(TONES_CLASSES))

    def generate(self, env_dir: Path, seed: int = 0, splits: tuple[int, int, int] | None = None) -> dict:
        from harness import demodata

        manifest = demodata.generate_task(Path(env_dir), self.spec(splits), seed, {})
        (Path(env_dir) / self.name).chmod(0o755)
        return manifest


LARGE = Suite("large", "large_tones", REPO / "bench" / "tasks" / "large_tones_task.py", (1200, 300, 300), 4,
              "the larger suite (about 37 min of audio)")
HOURS = Suite("hours", "hours_tones", REPO / "bench" / "tasks" / "hours_tones_task.py", (6000, 1500, 1500), 20,
              "the 3-hour suite")
SUITES = {s.key: s for s in (LARGE, HOURS)}

#: the mean clip length of `make_tones` (uniform 0.5 to 2 s): what a suite's size is planned with
MEAN_CLIP_S = 1.25

# The larger suite's names as they were before the 3-hour suite joined it (bench/beyond_demo.py, docs).
TASK_FILE = LARGE.task_file
NAME = LARGE.name
SPLITS = LARGE.splits


def spec():
    return LARGE.spec()


def generate(env_dir: Path, seed: int = 0) -> dict:
    return LARGE.generate(env_dir, seed)


if __name__ == "__main__":
    suite = SUITES[sys.argv[2] if len(sys.argv) > 2 else "large"]
    out = suite.generate(Path(sys.argv[1]))
    print(f"{suite.name}: {out.get('audio_seconds', 0) / 60:.1f} min of audio in {Path(sys.argv[1]) / suite.name}")
