"""What the host and the in-container agent say to each other: jobs, messages and shared limits.

Both sides import this module: the harness on the host when it writes a stage's jobs and reads what
came back, the agent in the container when it reads its jobs and writes its answer. It is the one
place where the shape of those files and the meaning of their statuses is written down, so a
field renamed on one side cannot silently go missing on the other. Standard library only, because
the agent runs in images that carry nothing of the host's dependencies.

Files, per stage:

    prepare  host -> /ctl/jobs.json     [PrepareJob]        agent -> OUT/manifest.json | OUT/error.json
    encode   host -> /jobs/jobs.json    [EncodeJob]         agent -> OUT/<split>/<batch>.{json,bin}, OUT/.agent-done
    score    host -> /ctl/jobs.json     [ScoreJob]          agent -> OUT (ScoreFailure JSON or the score)
    gate     host -> /ctl/go.json       Go | Cancel
    check, then encode (one container): agent -> <report> then <report>REPORT_FINAL_SUFFIX;
             host -> /ctl/jobs.json [EncodeJob], then /ctl/go.json Go(checker.encode's argv) | Cancel

How a task is scored (Track A's repeats and seed, the key mode) is a `ScoreRequest` inside its
`ScoreJob`: it travels in the jobs file, never in argv, and has one default per setting
(`DEFAULT_MODE`, `DEFAULT_REPEATS`, `DEFAULT_SEED`), which `aecc score` and `ScoreSettings` use.
Seeds derive from a base seed and labels with `derive_seed`, the one derivation both sides use.

The encoder's attributes travel as `EncoderAttributes`, checked against `ATTRIBUTE_RANGES`, which
the contract checker, the fetch stage and the trusted stages all use: an encoder that fails
validation for its attributes cannot be scored either.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Sequence, TypeVar

SCHEMA_VERSION = 1


class Mode(str, enum.Enum):
    """How crops of one clip in one encode batch are keyed in the encoded shards."""

    UNIQUE = "unique"  # every crop keyed uniquely: nothing lost (default)
    XARES = "xares"  # X-ARES 0.1.3's keys: its reader keeps one crop of each clip per batch


#: the one default of each scoring setting (`aecc score --mode/--repeats/--seed`, `ScoreSettings`)
DEFAULT_MODE = Mode.UNIQUE
DEFAULT_REPEATS = 3
DEFAULT_SEED = 0
#: the in-container checks' time budget (`aecc validate/score/export --max-seconds`, `python -m checker`)
DEFAULT_MAX_SECONDS = 600.0


def derive_seed(base: int, *parts: object) -> int:
    """A 32-bit seed from a base seed and labels: a task's Track A seed from the run's seed (the host),
    each repeat's and the shuffles' seeds from the task's (the agent)."""
    digest = hashlib.sha256("|".join([str(base), *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:4], "big")


class Level(str, enum.Enum):
    """What a failed check costs a submission: the one scale of `aecc validate`, the CI gate,
    `python -m checker`, `aecc score` and `result.json` (`checker.verdict` renders it)."""

    RULE = "rule"  # what X-ARES's own checker enforces (the rules require it): failing it excludes
    SCORING = "scoring"  # scored, but a task will fail or be worthless
    ADVICE = "advice"  # worth fixing; costs nothing in the evaluation

    @property
    def meaning(self) -> str:
        return {Level.RULE: "excludes the submission",
                Level.SCORING: "scored, but a task will fail or be worthless",
                Level.ADVICE: "worth fixing; costs no points"}[self]


#: The level of every check, defined here once. The contract checker's ids (`checker.common.CHECK_IDS`,
#: a test keeps both lists equal) and the steps the host adds around them (`intake`, `build`,
#: `fetch`, `sandbox`; `discover` in place). `rule` is exactly what X-ARES 0.1.3's
#: `audio_encoder_checker.check_audio_encoder` tests (tests/checker/test_official_parity.py runs it on
#: every fixture encoder), plus what makes a submission impossible to run at all (an archive refused
#: at intake, requirements that do not install, a constructor that fails with network on).
CHECK_LEVELS: dict[str, Level] = {
    # the host's steps
    "discover": Level.RULE,
    "intake": Level.RULE,
    "build": Level.RULE,
    "fetch": Level.RULE,
    "sandbox": Level.SCORING,  # the check stage hit a limit (memory, wall clock) after the rule checks
    # X-ARES's own checker, in this checker's ids
    "import": Level.RULE,
    "class_found": Level.RULE,
    "class_name": Level.RULE,
    "constructible": Level.RULE,
    "nn_module": Level.RULE,
    "attr_sampling_rate": Level.RULE,
    "attr_output_dim": Level.RULE,
    "attr_hop_size": Level.RULE,
    "forward_basic": Level.RULE,
    "output_type": Level.RULE,
    "output_rank": Level.RULE,
    "output_batch": Level.RULE,
    "output_dim_match": Level.RULE,
    # what the evaluation sends, beyond X-ARES's one call: a failure costs tasks
    "output_dtype": Level.SCORING,  # X-ARES stores what it gets; integer embeddings make worthless probes
    "forward_lengths": Level.SCORING,
    "long_input": Level.SCORING,
    "output_frames_positive": Level.SCORING,
    "finite": Level.SCORING,
    "forward_timeout": Level.SCORING,
    "cuda": Level.SCORING,
    "memory": Level.SCORING,
    "throughput": Level.SCORING,
    # advice
    "frames_track_hop": Level.ADVICE,
    "deterministic": Level.ADVICE,
    "batch_independence": Level.ADVICE,
    "padding_sensitivity": Level.ADVICE,
    "t4_pitfalls": Level.ADVICE,
}


def level_of(check_id: str) -> Level | None:
    """The level of a check id; None for the lines that report an infrastructure failure (`usage`,
    `infrastructure`, `check`), which are never the submission's."""
    return CHECK_LEVELS.get(check_id)


class ScoreFailureKind(str, enum.Enum):
    """Why the score stage could not score a task."""

    EMBEDDINGS = "embeddings"  # the embeddings do not match the prepared audio: the submission's fault
    SCORING = "scoring"  # X-ARES itself failed on the task: infrastructure


@dataclasses.dataclass(frozen=True)
class Range:
    low: float
    high: float
    unit: str = ""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)) \
            and self.low <= float(value) <= self.high

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}" + (f" {self.unit}" if self.unit else "")


#: the one definition of a plausible encoder, used by the checker, the fetch stage and the trusted stages
ATTRIBUTE_RANGES = {
    "sampling_rate": Range(8000, 48000, "Hz"),
    "output_dim": Range(1, 1 << 20),
    "hop_size_in_ms": Range(1, 1000, "ms"),
}


@dataclasses.dataclass(frozen=True)
class EncoderAttributes:
    """The three attributes the trusted stages need, as measured in the encoder's own container."""

    sampling_rate: int
    output_dim: int
    hop_size_in_ms: float
    class_name: str

    def __post_init__(self) -> None:
        problems = attribute_problems(dataclasses.asdict(self))
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EncoderAttributes":
        """Raises ValueError naming every attribute that is missing, of the wrong type or out of range."""
        problems = attribute_problems(data)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(sampling_rate=int(data["sampling_rate"]), output_dim=int(data["output_dim"]),
                   hop_size_in_ms=float(data["hop_size_in_ms"]), class_name=str(data["class_name"]))

    def to_args(self) -> list[str]:
        """The agent's command-line form (prepare, score)."""
        return ["--sampling-rate", str(self.sampling_rate), "--hop-ms", repr(self.hop_size_in_ms),
                "--output-dim", str(self.output_dim)]


def attribute_problems(data: Any) -> list[str]:
    """What is wrong with encoder attributes read from an untrusted report; empty when nothing is."""
    if not isinstance(data, dict):
        return [f"attributes must be an object, not {type(data).__name__}"]
    problems = []
    for name, allowed in ATTRIBUTE_RANGES.items():
        value = data.get(name)
        integral = name != "hop_size_in_ms"
        if value is None:
            problems.append(f"{name} is missing")
        elif value not in allowed:
            problems.append(f"{name} = {value!r} is outside {allowed.describe()}")
        elif integral and not float(value).is_integer():
            problems.append(f"{name} = {value!r} is not a whole number")
    name = data.get("class_name")
    if not isinstance(name, str) or not name.isidentifier() or len(name) > 200:
        problems.append(f"class_name = {name!r} is not a class name")
    return problems


# --- jobs ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PrepareJob:
    task: str  # a module name (tasks.esc50_task) or a mounted task file (/tasks/x_task.py)
    config_function: str | None
    out: str


@dataclasses.dataclass(frozen=True)
class EncodeJob:
    audio: str
    out: str


@dataclasses.dataclass(frozen=True)
class ScoreRequest:
    """How the agent scores one task: Track A `repeats` times on seeds derived from `seed` (the task's
    base seed, from the run's seed and the task only), crops keyed by `mode`. Every field is required on
    the wire: the defaults are the host's (`DEFAULT_*`), never the agent's."""

    seed: int
    repeats: int
    mode: Mode

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, not {self.seed!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an integer >= 1, not {self.repeats!r}")


@dataclasses.dataclass(frozen=True)
class ScoreJob:
    task: str
    config_function: str | None
    prepared: str
    embeddings: str
    work: str
    request: ScoreRequest
    out: str

    def __post_init__(self) -> None:
        if isinstance(self.request, dict):  # read back from the jobs file
            object.__setattr__(self, "request", ScoreRequest(**self.request))
        if not isinstance(self.request, ScoreRequest):
            raise TypeError(f"request must be a ScoreRequest, not {type(self.request).__name__}")


Job = TypeVar("Job", PrepareJob, EncodeJob, ScoreJob)


def job_rows(jobs: Sequence[Any]) -> list[dict[str, Any]]:
    """The jobs as the jobs file holds them (plain JSON data; enums by value), for `read_jobs`."""
    return [json.loads(json.dumps(dataclasses.asdict(j), default=_plain)) for j in jobs]


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON data")


def write_jobs(path: Path | str, jobs: Sequence[Any]) -> None:
    Path(path).write_text(json.dumps(job_rows(jobs)))


def read_jobs(path: Path | str, kind: type[Job]) -> list[Job]:
    """The jobs the host wrote; a missing or extra field is the host's bug and fails loudly."""
    return [kind(**row) for row in json.loads(Path(path).read_text())]


# --- answers ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScoreFailure:
    kind: ScoreFailureKind
    detail: str

    def to_json(self) -> str:
        return json.dumps({"error": self.kind.value, "detail": self.detail})

    @classmethod
    def from_dict(cls, data: dict) -> "ScoreFailure | None":
        """The failure a score answer holds, or None when it holds a score."""
        if "error" not in data:
            return None
        return cls(ScoreFailureKind(data["error"]), str(data.get("detail", "")))


@dataclasses.dataclass(frozen=True)
class PrepareFailure:
    """Task data the prepare stage could not read: an infrastructure problem, never the submission's."""

    detail: str

    def to_json(self) -> str:
        return json.dumps({"error": self.detail})

    @classmethod
    def from_dict(cls, data: dict) -> "PrepareFailure":
        return cls(str(data.get("error", "")))


#: beside the check report, once it is final: the host reads the report then, and only then
REPORT_FINAL_SUFFIX = ".done"

#: written into an encode job's output folder by the agent after each task (timing only: the host
#: counts the embeddings itself)
ENCODE_DONE = ".agent-done"


# --- the gate's go file ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Go:
    argv: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Cancel:
    pass


def gate_message(message: Go | Cancel) -> str:
    return json.dumps({"cancel": True} if isinstance(message, Cancel) else {"argv": list(message.argv)})


def read_gate_message(text: str) -> Go | Cancel:
    data = json.loads(text)
    if data.get("cancel"):
        return Cancel()
    return Go(tuple(data["argv"]))


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` so that a reader never sees a partial file (rename into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
