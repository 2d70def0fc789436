"""The paired bootstrap over test clips and Track A repeats: how sure a score and a rank are (issue 23).

A leaderboard score is a mean over one finite test set, and in Track A also over a few probe seeds.
Which clips happen to be in the test set moves a score more than the seed does (DCASE publishes every
accuracy with its interval; challengeR, Wiesenfarth et al., Sci Rep 2021, ranks by bootstrap). So each
of B resamples

- draws, per task, n clips with replacement out of the task's n: a multiplicity matrix [B, n] that
  every row shares (a *paired* bootstrap: two rows are always compared on the same clips);
- in Track A draws, per row and task, one of the row's repeats (its probe seeds);
- recomputes each row's metric on those clips (`checker.clips.recompute`, through `fast_metrics`,
  which gives its numbers bit for bit at a fraction of the cost), then normalises and averages it
  with the leaderboard's own equations (`formula.normalise_many`, `formula.average_many`).

From the B scores per row come a percentile interval of every task's metric and of the average, the
share of resamples in which a row is ahead of the next one down (the tie rule, `formula.rank_rows`),
and, once ranked, each row's rank distribution; rows without per-clip data are held at their score
there, so that the rank interval reads on the same scale as the rank.

A row takes part only when every task it is counted on has per-clip data on the same clips as the
other rows (the same sorted clip keys). A reference row, a result without clips.npz, a clips file
whose digest or values disagree with its signed result, or another test set gets no interval and
the reason; it keeps the plain tie rule.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.errors import UsageError
from harness.rank import formula
from harness.rank.model import CellState, Entry, Track
from harness.tasks.registry import Registry

#: the issue's defaults: 1000 resamples, 95 % intervals, separated at 95 % of resamples
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
DEFAULT_TIE_CONFIDENCE = 0.95
#: a clip file's recorded value and the signed result's may differ by float formatting only
VALUE_TOLERANCE = 1e-6
#: multiplicity entries per chunk of resamples: bounds the memory (16 MiB of int64) at any task size
CHUNK_ENTRIES = 2_000_000

METHOD = ("paired percentile bootstrap: per resample, each task's test clips are drawn with replacement (the same "
          "draw for every row), in Track A one of each row's repeats is drawn per task, and the metric is recomputed "
          "from the per-clip outputs (clips.npz), normalised and averaged as the leaderboard does; intervals are the "
          "resamples' percentiles; rank distributions rank every ranked row per resample (rows without per-clip "
          "data held at their score; a tie in a resample shares the better rank)")

#: multiplicities [b, n] (each row sums to n) -> the metric recomputed per resample [b]
Scorer = Callable[[np.ndarray], np.ndarray]
#: how a row is known across the bootstrap: (provenance, name, submission digest)
RowKey = tuple[str, str, "str | None"]


def row_key(entry: Entry) -> RowKey:
    return (entry.provenance.value, entry.name, entry.sha256)


@dataclasses.dataclass(frozen=True)
class BootstrapSpec:
    """What `aecc leaderboard --bootstrap B --bootstrap-seed S --tie-confidence C` asked for."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    tie_confidence: float = DEFAULT_TIE_CONFIDENCE
    level: float = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 0:
            raise UsageError("--bootstrap takes a number of resamples", expected="an integer >= 0 (0: off)",
                             found=repr(self.resamples), fix="--bootstrap 1000 (the default) or --bootstrap 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError("--bootstrap-seed takes a seed", expected="an integer >= 0", found=repr(self.seed),
                             fix="--bootstrap-seed 0")
        if not 0.5 <= self.tie_confidence < 1.0:
            raise UsageError("--tie-confidence is the share of resamples that separates two rows",
                             expected="a number in [0.5, 1)", found=repr(self.tie_confidence),
                             fix="--tie-confidence 0.95 (the default)")
        if not 0.0 < self.level < 1.0:
            raise UsageError("the interval level must be a probability", expected="a number in (0, 1)",
                             found=repr(self.level), fix="harness bug")

    @property
    def enabled(self) -> bool:
        return self.resamples > 0

    def to_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "seed": self.seed, "level": self.level,
                "tie_confidence": self.tie_confidence, "method": METHOD if self.enabled else "off (--bootstrap 0)"}


@dataclasses.dataclass(frozen=True)
class TaskClips:
    """One row's per-clip data for one task: its clip keys (sorted) and one scorer per run (Track A
    repeats), with the value each run reported on the full test set."""

    task: str
    keys: np.ndarray
    runs: tuple[Scorer, ...]
    reported: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(self.runs))
        object.__setattr__(self, "reported", tuple(float(v) for v in self.reported))
        keys = np.asarray(self.keys)
        if keys.ndim != 1 or keys.size == 0:
            raise UsageError(f"task '{self.task}': per-clip data needs clip keys", expected="a 1-D array of clip ids",
                             found=f"shape {keys.shape}", fix="check the result's clips.npz")
        if not self.runs or len(self.runs) != len(self.reported):
            raise UsageError(f"task '{self.task}': one reported value per run", expected="runs == reported >= 1",
                             found=f"{len(self.runs)} runs, {len(self.reported)} values", fix="harness bug")
        object.__setattr__(self, "keys", keys)

    @functools.cached_property
    def keys_digest(self) -> str:
        """Two rows resample the same clips only when this matches (keys are in one canonical order)."""
        return hashlib.sha256("\n".join(str(k) for k in self.keys.tolist()).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class ClipSource:
    """A result's per-clip data by (track, task), or why it has none."""

    clips: Mapping[tuple[str, str], TaskClips] | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if (self.clips is None) == (not self.reason):
            raise UsageError("per-clip data or a reason, and only one", expected="clips xor reason",
                             found=f"clips={self.clips is not None}, reason={self.reason!r}", fix="harness bug")


def from_clip_runs(runs: Iterable[Any]) -> dict[tuple[str, str], TaskClips]:
    """`checker.clips.ClipRun`s grouped per (track, task), Track A repeats in run order."""
    from harness.rank.fast_metrics import RunScorer

    grouped: dict[tuple[str, str], list[Any]] = collections.defaultdict(list)
    for run in runs:
        grouped[(str(run.track), str(run.task))].append(run)
    out = {}
    for (track, task), found in grouped.items():
        found.sort(key=lambda r: r.run)
        for other in found[1:]:
            if not np.array_equal(other.keys, found[0].keys):
                raise UsageError(f"task '{task}': Track {track} repeats were scored on different clips",
                                 expected="one set of clip keys per task", found=f"run {other.run} differs",
                                 fix="rescore the task")
        out[(track, task)] = TaskClips(task, found[0].keys, tuple(RunScorer(r) for r in found),
                                       tuple(r.reported for r in found))
    return out


def load_clips(directory: Path, result: Mapping[str, Any]) -> ClipSource:
    """The per-clip data of an admitted result: `RESULTS/<sha>/clips.npz`, checked against the digest
    its (signed) result.json records. Anything wrong is a reason, never a crash: the row is still
    ranked, only without an interval."""
    record = result.get("clips")
    if not isinstance(record, Mapping):
        return ClipSource(reason="its result records no per-clip outputs (clips.npz): scored without them")
    from checker import clips as clipfile

    if record.get("file") != clipfile.CLIPS_NAME:
        return ClipSource(reason=f"its result names {record.get('file')!r} as the per-clip file, not "
                                 f"{clipfile.CLIPS_NAME}")
    path = Path(directory) / clipfile.CLIPS_NAME
    if not path.is_file() or path.is_symlink():
        return ClipSource(reason=f"{clipfile.CLIPS_NAME} is missing beside its result.json")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != record.get("sha256"):
        return ClipSource(reason=f"{clipfile.CLIPS_NAME} does not match the digest its signed result records "
                                 f"(sha256 {digest.hexdigest()[:12]}..., recorded {str(record.get('sha256'))[:12]}...)")
    try:
        return ClipSource(clips=from_clip_runs(clipfile.read_clips(path)))
    except Exception as exc:  # noqa: BLE001 (an unreadable file is the row's reason, not the board's crash)
        text = getattr(exc, "summary", None) or str(exc)
        return ClipSource(reason=f"{clipfile.CLIPS_NAME} cannot be read: {type(exc).__name__}: {text[:200]}")


# ------------------------------------------------------------------------------------------ resampling


@dataclasses.dataclass(frozen=True)
class TaskInterval:
    """A row's interval for one task: the raw metric and its normalised value."""

    raw: tuple[float, float]
    normalised: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class RowResamples:
    scores: np.ndarray  # [B]: the row's weighted average per resample
    interval: tuple[float, float]
    tasks: Mapping[str, TaskInterval]


@dataclasses.dataclass(frozen=True)
class RankStats:
    """How often each rank occurred (counts[0] is rank 1), its median and 95 % interval."""

    counts: tuple[int, ...]
    median: float
    low: int
    high: int


@dataclasses.dataclass(frozen=True)
class TrackResamples:
    """The bootstrap of one track: resampled scores of the rows that have them, reasons for the rest."""

    spec: BootstrapSpec
    rows: Mapping[RowKey, RowResamples]
    reasons: Mapping[RowKey, str]
    clips: Mapping[str, int]  # task -> clips per resample

    def ahead(self, upper: formula.ScoredRow, lower: formula.ScoredRow) -> float | None:
        """Share of resamples in which `upper` scores strictly higher than `lower` (None: not both)."""
        a, b = self.rows.get(row_key(upper.entry)), self.rows.get(row_key(lower.entry))
        if a is None or b is None:
            return None
        return float(np.mean(a.scores > b.scores))

    def rank_stats(self, ranked: Sequence[formula.ScoredRow]) -> dict[RowKey, RankStats]:
        """Each resampled row's rank distribution among every ranked row of the track."""
        rows = [r for r in ranked if r.ranked]
        if not rows or not any(row_key(r.entry) in self.rows for r in rows):
            return {}
        b = self.spec.resamples
        scores = np.stack([self.rows[row_key(r.entry)].scores if row_key(r.entry) in self.rows
                           else np.full(b, r.score) for r in rows])  # [N, B]
        # rank = 1 + how many rows score strictly higher in that resample (competition ranking)
        ranks = 1 + (scores[None, :, :] > scores[:, None, :]).sum(axis=1)
        out = {}
        for i, row in enumerate(rows):
            key = row_key(row.entry)
            if key not in self.rows:
                continue
            tail = (1.0 - self.spec.level) / 2
            out[key] = RankStats(counts=tuple(int(c) for c in np.bincount(ranks[i] - 1, minlength=len(rows))),
                                 median=float(np.median(ranks[i])),
                                 low=int(np.quantile(ranks[i], tail, method="lower")),
                                 high=int(np.quantile(ranks[i], 1.0 - tail, method="higher")))
        return out


def multiplicities(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """[b, n] int64: how often each of n clips is drawn in each of b resamples of n draws with
    replacement (each row sums to n)."""
    drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b, dtype=np.int64) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n)


def _eligible(row: formula.ScoredRow, track: Track, source: ClipSource | None) -> tuple[dict[str, TaskClips], str]:
    """A row's per-clip data for every task it is counted on with a value, or why it has none."""
    entry = row.entry
    if not row.ranked:
        return {}, "not ranked (incomplete): no interval"
    if entry.reference:
        return {}, "a reference row (published numbers): no per-clip data, so no interval; the plain tie rule"
    if source is None:
        return {}, "no per-clip data was read for this result"
    if source.clips is None:
        return {}, source.reason
    found = {}
    for cell in row.cells:
        if not (cell.counted and cell.state is CellState.VALUE):
            continue
        clips = source.clips.get((track.value, cell.task))
        if clips is None:
            return {}, f"no per-clip data for task {cell.task} (Track {track.value}) in its clips.npz"
        if track is Track.B and len(clips.runs) != 1:
            return {}, f"task {cell.task}: Track B is one run, its clips.npz holds {len(clips.runs)}"
        if track is Track.A and len(clips.runs) != max(1, cell.repeats):
            return {}, (f"task {cell.task}: the signed result has {max(1, cell.repeats)} Track A run(s), its "
                        f"clips.npz {len(clips.runs)}: a repeat without per-clip data cannot be drawn")
        reported = math.fsum(clips.reported) / len(clips.reported)
        if abs(reported - cell.raw) > VALUE_TOLERANCE * max(1.0, abs(cell.raw)):
            return {}, (f"task {cell.task}: its clips.npz reports {reported!r}, its signed result {cell.raw!r}: "
                        "they disagree")
        found[cell.task] = clips
    return found, ""


def resample_track(track: Track, rows: Sequence[formula.ScoredRow], tasks: Sequence[str], registry: Registry,
                   sources: Mapping[str, ClipSource], spec: BootstrapSpec) -> TrackResamples:
    """Resample one track's rows (`sources`: per-clip data by submission digest).

    Raises:
        UsageError: bootstrap off (`spec.resamples == 0`), or per-clip data that the metric cannot
            recompute (from `checker.clips.recompute`).
    """
    track = Track(track)
    if not spec.enabled:
        raise UsageError("the bootstrap is off", expected="--bootstrap B with B > 0", found="0", fix="harness bug")
    reasons: dict[RowKey, str] = {}
    candidates: dict[RowKey, tuple[formula.ScoredRow, dict[str, TaskClips]]] = {}
    for row in rows:
        key = row_key(row.entry)
        found, reason = _eligible(row, track, sources.get(row.entry.sha256 or ""))
        if reason:
            reasons[key] = reason
        else:
            candidates[key] = (row, found)

    # Paired means same clips: per task, the rows whose keys differ from the most common set drop out.
    for task in tasks:
        digests = [(key, found[task].keys_digest) for key, (_, found) in candidates.items() if task in found]
        if not digests:
            continue
        counts = collections.Counter(d for _, d in digests)
        first = {d: i for i, (_, d) in reversed(list(enumerate(digests)))}
        common = min(counts, key=lambda d: (-counts[d], first[d]))
        for key, digest in digests:
            if digest != common:
                reasons[key] = (f"task {task}: its clips differ from the other rows' ({counts[common]} rows share one "
                                "test set): not comparable clip by clip, so no interval")
                candidates.pop(key, None)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(len(candidates), os.cpu_count() or 1))) as pool:
        raw = _resample_tasks(track, tasks, candidates, reasons, spec, pool)
    return _summarise(candidates, raw, reasons, registry, spec)


def _stream(spec: BootstrapSpec, *names: str) -> np.random.Generator:
    """A random stream named by the seed and `names` (track, task[, row]): a task's clip draw and a
    row's repeat draw never depend on which other rows or tasks are on the board, so adding a
    submission leaves every other row's resamples as they were."""
    words = [int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") for name in names]
    return np.random.default_rng(np.random.SeedSequence([spec.seed, *words]))


def _resample_tasks(track: Track, tasks: Sequence[str], candidates: dict, reasons: dict[RowKey, str],
                    spec: BootstrapSpec, pool: concurrent.futures.Executor) -> dict[RowKey, dict[str, np.ndarray]]:
    """Every candidate row's raw metric per task and resample; rows whose metric is undefined on some
    resample drop out of `candidates` into `reasons`."""
    b = spec.resamples
    raw: dict[RowKey, dict[str, np.ndarray]] = {key: {} for key in candidates}
    for task in tasks:
        users = [(key, found[task]) for key, (_, found) in list(candidates.items()) if task in found]
        if not users:
            continue
        n = int(users[0][1].keys.size)
        rng = _stream(spec, track.value, task)
        # the repeat each row uses in each resample: the row's own stream (its digest names it)
        picks = {key: _stream(spec, track.value, task, "\0".join(str(k) for k in key)).integers(
                     0, len(clips.runs), size=b) for key, clips in users if len(clips.runs) > 1}
        out = {key: np.empty(b, dtype=np.float64) for key, _ in users}
        batch, batched, alone = _linear_batch(users)
        chunk = max(1, min(b, CHUNK_ENTRIES // n))
        for start in range(0, b, chunk):
            stop = min(b, start + chunk)
            weights = multiplicities(rng, n, stop - start)

            def score(user: tuple[RowKey, TaskClips], start: int = start, stop: int = stop,
                      weights: np.ndarray = weights, picks: dict = picks, out: dict = out) -> None:
                key, clips = user
                if key not in picks:
                    out[key][start:stop] = clips.runs[0](weights)
                    return
                pick = picks[key][start:stop]
                for r, scorer in enumerate(clips.runs):
                    chosen = np.flatnonzero(pick == r)
                    if chosen.size:
                        out[key][start + chosen] = scorer(weights[chosen])

            # Rows are independent given the draw (made above, in order): numpy releases the GIL in
            # its array loops, so threads over rows use every core without changing a number.
            pending = pool.map(score, alone)
            if batch is not None:
                # Every repeat on every resample: one product for all rows is cheaper than each
                # row's own share, and a resample's value does not depend on which others are in it.
                values = iter(batch.evaluate(weights))
                for key, clips in batched:
                    per_run = [next(values) for _ in clips.runs]
                    if key not in picks:
                        out[key][start:stop] = per_run[0]
                        continue
                    pick = picks[key][start:stop]
                    for r, value in enumerate(per_run):
                        chosen = np.flatnonzero(pick == r)
                        out[key][start + chosen] = value[chosen]
            list(pending)
        for key, _ in users:
            if not np.all(np.isfinite(out[key])):
                # e.g. a WER resample without reference words, an EER resample without positives
                reasons[key] = (f"task {task}: its metric is undefined on {int(np.sum(~np.isfinite(out[key])))} of "
                                f"{b} resamples (too few clips of a kind): no interval")
                candidates.pop(key, None)
                raw.pop(key, None)
            else:
                raw[key][task] = out[key]
    return raw


def _linear_batch(users: list[tuple[RowKey, TaskClips]]) -> tuple[Any, list, list]:
    """The rows whose every run is a linear metric (`fast_metrics.LinearBatch`: one matrix product
    for all of them), and the rest, each scored on its own."""
    from harness.rank.fast_metrics import LinearBatch, RunScorer

    batched, alone = [], []
    for user in users:
        runs = user[1].runs
        (batched if all(isinstance(r, RunScorer) and r.linear for r in runs) else alone).append(user)
    if not batched:
        return None, [], alone
    return LinearBatch([scorer.run for _, clips in batched for scorer in clips.runs]), batched, alone


def _summarise(candidates: dict, raw: dict[RowKey, dict[str, np.ndarray]], reasons: dict[RowKey, str],
               registry: Registry, spec: BootstrapSpec) -> TrackResamples:
    """Per row: the weighted average per resample (equations 1 and 2), and the intervals."""
    b = spec.resamples
    clip_counts = {task: int(clips.keys.size) for _, found in candidates.values() for task, clips in found.items()}
    tail = (1.0 - spec.level) / 2
    resampled: dict[RowKey, RowResamples] = {}
    for key, (row, found) in candidates.items():
        counted = [c for c in row.cells if c.counted]
        columns, intervals = [], {}
        for cell in counted:
            if cell.task in found:
                entry = registry.get(cell.task)
                values = raw[key][cell.task]
                low, high = (float(v) for v in np.quantile(values, [tail, 1.0 - tail]))
                normalised = formula.normalise_many(entry, values)
                bounds = formula.normalise_many(entry, np.array([low, high]))
                intervals[cell.task] = TaskInterval(raw=(low, high),
                                                    normalised=(float(bounds.min()), float(bounds.max())))
                columns.append(normalised)
            else:  # a failed or not-run task counted 0: the same in every resample
                columns.append(np.full(b, float(cell.normalised)))
        scores = formula.average_many([c.weight for c in counted], np.stack(columns, axis=1))
        low, high = (float(v) for v in np.quantile(scores, [tail, 1.0 - tail]))
        resampled[key] = RowResamples(scores=scores, interval=(low, high), tasks=intervals)
    return TrackResamples(spec=spec, rows=resampled, reasons=reasons, clips=clip_counts)
