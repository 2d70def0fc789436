"""Per-clip outputs of X-ARES's own evaluations, captured at the metric, without forking X-ARES.

The hook (`hooks`): X-ARES evaluates through two methods, `xares.trainer.Trainer.run_inference`
(Track A: the test split, or each test fold, after `run_mlp` trained the probe) and
`xares.trainer.KNNTrainer.train_and_eval` (Track B). Both build their metric from the trainer's
`_metric_obj` (an `xares.metrics.EvalMetric`) and attach it to the ignite engine that evaluates.
While one of them runs, the hook swaps `_metric_obj` for one whose metric instance, when attached,
also registers an `ITERATION_COMPLETED` handler on that same engine: the handler sees exactly the
`engine.state.output` the metric is fed (`(y_pred, y)`) and the batch's clip keys
(`engine.state.batch[-1]`, the webdataset `__key__`s), and keeps per clip only what the metric needs
(`_reduce`). The method's return value, X-ARES's number, is kept beside it. Training and the
validation engine are untouched: the swap lasts for the evaluation call only, and the metric
object X-ARES computes with is X-ARES's own.

Per batch, what is kept mirrors the metric's own arithmetic (same torch calls on the same tensors):
- accuracy: argmax over classes (ignite's multiclass case), and the target;
- mAP: the scores and multi-hot targets as given to sklearn;
- segment F1: `sigmoid().round()`, max-pooled over the metric instance's own `max_pooling_size`
  (padded frames included, as X-ARES pools padded batches), counted per clip and class as tp/fp/fn;
- recall@1 (contrastive): both embeddings, ranked once at the end over the whole test set as
  `xares.metrics.clap_metrics` does, then per audio clip: its a2t hit and its captions' t2a hits;
- WER: per clip, jiwer's word errors and reference words of the lower-cased texts;
- EER: the scores and targets; MSE/MAE: the error summed over a clip's elements.
Anything else (another shape, another metric) is reported as a reason and no clips are kept.

`checker.score` turns one Track A repeat (one or several folds) or Track B into a
`checker.clips.ClipRun` with `build_run`, and keeps it only when `recompute` gives back X-ARES's
number within `clips.PARITY_TOLERANCE`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from checker import clips


class NotCapturable(Exception):
    """This evaluation's outputs cannot be turned into per-clip data (the message says why)."""


@dataclasses.dataclass
class Evaluation:
    """One X-ARES evaluation call: its metric, per-batch reduced outputs, clip keys and value."""

    metric: str
    instance: Any = None  # the metric object X-ARES computed with (for its parameters)
    batches: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    keys: list[str] = dataclasses.field(default_factory=list)
    value: float | None = None
    problem: str | None = None  # set when a batch could not be reduced


@dataclasses.dataclass
class Recorder:
    evaluations: list[Evaluation] = dataclasses.field(default_factory=list)

    def take(self) -> list[Evaluation]:
        taken, self.evaluations = self.evaluations, []
        return taken


def _plain(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return x


def _reduce(metric: str, instance: Any, output: Any) -> dict[str, Any]:
    """What to keep of one batch's `(y_pred, y)` for `metric` (numpy, first axis = the batch's rows)."""
    import torch

    if metric == "recallatk_r1":
        # ranked over the whole set at the end, on the device X-ARES ranks on: a GPU's float sums
        # differ from a CPU's in the last bits, enough to reorder near-ties
        return {"audio": output[0].detach().float(), "text": output[1].detach().float()}
    y_pred, y = (_plain(v) for v in output)
    if metric == "accuracy":
        if not (isinstance(y_pred, torch.Tensor) and y_pred.ndim == 2 and y.ndim == 1 and y_pred.shape[1] > 1):
            raise NotCapturable(f"accuracy on y_pred {tuple(y_pred.shape)}, y {tuple(y.shape)}: only ignite's "
                                "multiclass case ([B, C] scores, [B] labels) is kept per clip")
        return {"pred": torch.argmax(y_pred, dim=1).numpy().astype(np.int64), "target": y.numpy().astype(np.int64)}
    if metric == "mAP":
        scores, target = y_pred.numpy(), y.numpy()
        if target.ndim == 1 and scores.ndim in (1, 2) and (scores.ndim == 1 or scores.shape[1] == 1):
            scores, target = scores.reshape(-1, 1), target.reshape(-1, 1)
        if scores.ndim != 2 or scores.shape != target.shape or not np.isin(target, (0, 1)).all():
            raise NotCapturable(f"mAP on y_pred {scores.shape}, y {target.shape}: only multi-hot targets of the "
                                "scores' shape (or binary) are kept per clip")
        return {"scores": scores, "target": target.astype(np.uint8)}
    if metric in ("segmentf1_macro", "segmentf1_micro"):
        pool = instance.max_pooling_size
        pred = y_pred.sigmoid().round()  # X-ARES's output_transform for these metrics

        def pooled(t):
            return torch.nn.functional.max_pool1d(t.transpose(-2, -1), kernel_size=pool).transpose(-2, -1).long()

        if pred.ndim != 3 or pred.shape != y.shape:
            raise NotCapturable(f"{metric} on y_pred {tuple(pred.shape)}, y {tuple(y.shape)}: expected [B, T, C]")
        p, t = pooled(pred), pooled(y.float())
        return {"tp": ((p == 1) & (t == 1)).sum(1).numpy().astype(np.int64),
                "fp": ((p == 1) & (t == 0)).sum(1).numpy().astype(np.int64),
                "fn": ((p == 0) & (t == 1)).sum(1).numpy().astype(np.int64)}
    if metric == "WER_inv":
        import jiwer

        errors, words = [], []
        for hyp, ref in zip(y_pred, y):
            out = jiwer.process_words(ref.lower(), hyp.lower())
            errors.append(out.substitutions + out.deletions + out.insertions)
            words.append(out.hits + out.substitutions + out.deletions)
        return {"errors": np.array(errors, np.int64), "ref_words": np.array(words, np.int64)}
    if metric == "EER":
        score = y_pred.numpy()
        if score.ndim == 2 and score.shape[1] == 1:
            score = score[:, 0]
        if score.ndim != 1 or y.ndim != 1:
            raise NotCapturable(f"EER on y_pred {tuple(y_pred.shape)}: expected one score per clip")
        return {"score": score.astype(np.float64), "target": y.numpy().astype(np.int64)}
    if metric in ("MSE", "MAE"):
        diff = y_pred - y.view_as(y_pred)  # ignite's own arithmetic, in y_pred's dtype
        per = (diff.pow(2) if metric == "MSE" else diff.abs()).reshape(len(diff), -1).sum(1)
        return {"sq_error" if metric == "MSE" else "abs_error": per.double().numpy()}
    raise NotCapturable(f"metric {metric!r} has no per-clip form (supported: {sorted(clips.SUPPORTED_METRICS)})")


def _capturing(eval_metric: Any, evaluation: Evaluation) -> Any:
    """`eval_metric` (an xares EvalMetric) whose metric instances also record what they are fed."""
    from ignite.engine import Events

    make = eval_metric.metric

    def metric(*args, **kwargs):
        instance = make(*args, **kwargs)
        evaluation.instance = instance
        attach = instance.attach

        def record(engine) -> None:
            if evaluation.problem is not None:
                return
            batch_keys = [str(k) for k in engine.state.batch[-1]]
            try:
                reduced = _reduce(evaluation.metric, instance, engine.state.output)
            except Exception as exc:  # noqa: BLE001 (keeping clips must never fail the scoring itself)
                evaluation.problem = str(exc) if isinstance(exc, NotCapturable) else f"{type(exc).__name__}: {exc}"
                return
            rows = {len(v) for v in reduced.values()}
            if rows != {len(batch_keys)}:
                evaluation.problem = f"a batch of {len(batch_keys)} keys gave {sorted(rows)} rows"
                return
            evaluation.batches.append(reduced)
            evaluation.keys.extend(batch_keys)

        def attach_and_record(engine, name, *a, **k):
            engine.add_event_handler(Events.ITERATION_COMPLETED, record)
            return attach(engine, name, *a, **k)

        instance.attach = attach_and_record
        return instance

    return dataclasses.replace(eval_metric, metric=metric)


@contextlib.contextmanager
def hooks(recorder: Recorder) -> Iterator[Recorder]:
    """While open, every X-ARES evaluation (Track A test/fold, Track B) is recorded in `recorder`."""
    from xares import trainer as xt

    run_inference, train_and_eval = xt.Trainer.run_inference, xt.KNNTrainer.train_and_eval

    def evaluated(original: Callable) -> Callable:
        def wrapper(self, *args, **kwargs):
            evaluation = Evaluation(metric=self.metric)
            own = self._metric_obj
            self._metric_obj = _capturing(own, evaluation)
            try:
                value = original(self, *args, **kwargs)
            finally:
                self._metric_obj = own
            evaluation.value = float(value.item() if hasattr(value, "item") else value)
            recorder.evaluations.append(evaluation)
            return value
        return wrapper

    xt.Trainer.run_inference = evaluated(run_inference)
    xt.KNNTrainer.train_and_eval = evaluated(train_and_eval)
    try:
        yield recorder
    finally:
        xt.Trainer.run_inference, xt.KNNTrainer.train_and_eval = run_inference, train_and_eval


# -- from evaluations to a ClipRun ---------------------------------------------------------------------


def _recall_per_clip(evaluation: Evaluation) -> tuple[list[str], dict[str, np.ndarray]]:
    """X-ARES's clap_metrics ranking (same calls), kept per audio clip instead of averaged."""
    import torch

    num_caps = int(evaluation.instance.num_caps)
    audio = torch.cat([b["audio"] for b in evaluation.batches])
    text = torch.cat([b["text"] for b in evaluation.batches])
    n, device = len(audio), audio.device
    if n % num_caps:
        raise NotCapturable(f"{n} rows are not groups of {num_caps} captions")
    sim = torch.nn.functional.normalize(audio, p=2, dim=1) @ torch.nn.functional.normalize(text, p=2, dim=1).T
    groups = n // num_caps
    # audio -> text: the first row of each group ranks every caption; a hit when its best caption is first
    a2t_logit = sim.view(groups, num_caps, -1)[:, 0, :].repeat_interleave(num_caps, dim=0)
    truth = torch.arange(n, device=device).view(-1, 1)
    a2t_rank = torch.where(torch.argsort(a2t_logit, descending=True) == truth)[1]
    a2t_hit = (a2t_rank.view(-1, num_caps).min(-1)[0] < 1).cpu().numpy().astype(np.int64)
    # text -> audio: each caption ranks the groups' first rows; a hit when its own clip is first
    t2a_logit = sim.t().view(-1, groups, num_caps)[:, :, 0]
    truth = torch.arange(groups, device=device).repeat_interleave(num_caps).view(-1, 1)
    t2a_rank = torch.where(torch.argsort(t2a_logit, descending=True) == truth)[1]
    t2a_hits = (t2a_rank < 1).view(-1, num_caps).sum(-1).cpu().numpy().astype(np.int64)
    keys = evaluation.keys[::num_caps]
    return keys, {"a2t_hit": a2t_hit, "t2a_hits": t2a_hits, "captions": np.full(groups, num_caps, np.int64)}


def _per_clip(evaluation: Evaluation) -> tuple[list[str], dict[str, np.ndarray]]:
    if evaluation.problem is not None:
        raise NotCapturable(evaluation.problem)
    if not evaluation.batches:
        raise NotCapturable("the evaluation saw no batch")
    if evaluation.metric == "recallatk_r1":
        return _recall_per_clip(evaluation)
    names = evaluation.batches[0].keys()
    return list(evaluation.keys), {n: np.concatenate([b[n] for b in evaluation.batches]) for n in names}


def _unique(keys: list[str], clip_ids: Mapping[str, str]) -> list[str]:
    """Each X-ARES key as its canonical clip id, a repeat made distinct by its occurrence."""
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        ident = clip_ids.get(key, key)
        count = seen.get(ident, 0)
        seen[ident] = count + 1
        out.append(ident if count == 0 else f"{ident}#dup{count}")
    return out


def build_run(evaluations: list[Evaluation], *, task: str, track: str, run: int, seed: int | None,
              reported: float, clip_ids: Mapping[str, str]) -> clips.ClipRun:
    """One ClipRun from the evaluations of one Track A repeat or of Track B (several: one per fold).

    Raises:
        NotCapturable: the outputs have no per-clip form, or the recomputed value is not X-ARES's.
    """
    if not evaluations:
        raise NotCapturable("X-ARES ran no evaluation")
    metrics = {e.metric for e in evaluations}
    if len(metrics) != 1:
        raise NotCapturable(f"several metrics in one run: {sorted(metrics)}")
    metric = metrics.pop()
    if metric not in clips.SUPPORTED_METRICS:
        raise NotCapturable(f"metric {metric!r} has no per-clip form (supported: {sorted(clips.SUPPORTED_METRICS)})")
    keys: list[str] = []
    parts: dict[str, list[np.ndarray]] = {}
    for fold, evaluation in enumerate(evaluations):
        fold_keys, arrays = _per_clip(evaluation)
        if len(evaluations) > 1:
            arrays["fold"] = np.full(len(fold_keys), fold, np.int64)
        keys.extend(fold_keys)
        for name, arr in arrays.items():
            parts.setdefault(name, []).append(arr)
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    sorted_keys, sorted_arrays = clips.canonical_order(_unique(keys, clip_ids), arrays)
    try:
        result = clips.ClipRun(task=task, track=track, run=run, seed=seed, metric=metric, reported=reported,
                               keys=sorted_keys, arrays=sorted_arrays)
    except clips.ClipsError as exc:
        raise NotCapturable(str(exc)) from None
    gap = clips.parity_gap(result)
    if not gap <= clips.PARITY_TOLERANCE:
        raise NotCapturable(f"recomputed {clips.recompute(result)!r} differs from X-ARES's {reported!r} by {gap:.3g}")
    return result
