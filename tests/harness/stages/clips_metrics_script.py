"""Run inside the runtime image (X-ARES 0.1.3 installed, the live checker mounted): for every metric
X-ARES has, X-ARES's own Trainer / KNNTrainer evaluate generated outputs with their own metric
objects while `checker.capture.hooks` records them; each run is rebuilt with `capture.build_run`
(which refuses a recomputed value off X-ARES's by more than 1e-6) and recomputed again here.
Prints one JSON line: {"clips_parity": {case: {"xares": value, "recomputed": value, "clips": n}}}.
Not a test module (no test_ prefix): tests/harness/stages/test_score_clips.py runs it."""

import json
import sys

import numpy as np
import torch

from checker import capture, clips
from xares.trainer import KNNTrainer, Trainer

rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
torch.manual_seed(0)
BATCH = 8


class Passthrough(torch.nn.Module):
    """A 'probe' whose outputs are the generated predictions: X-ARES's trainer and metric do the rest."""

    def __init__(self, text_table=None, hypotheses=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # Trainer builds an optimizer over parameters
        self.text_table, self.hypotheses = text_table, hypotheses

    def forward(self, x, y=None, return_loss=False):
        if self.text_table is not None:  # contrastive: y is the captions
            return x, torch.stack([self.text_table[t] for t in y])
        return x, y


class Generating(Passthrough):
    def generate(self, x, x_length, text):  # ASR: the hypothesis stored for each reference
        return [self.hypotheses[t] for t in text], text


def batches(x, y, keys, frame=False):
    """X-ARES's embedding batches: ((x [B, D, T], lengths), y, keys)."""
    out = []
    for s in range(0, len(keys), BATCH):
        xb = x[s:s + BATCH]
        lengths = torch.full((len(xb),), xb.shape[-1])
        yb = y[s:s + BATCH]
        if frame:
            yb = (yb, torch.full((len(xb),), yb.shape[-1]))
        out.append(((xb, lengths), yb, keys[s:s + BATCH]))
    return out


def evaluate(metric, dl, task_type="clip", model=None, metric_args=None):
    trainer = Trainer(model or Passthrough(), metric=metric, metric_args=metric_args or {}, task_type=task_type,
                      device="cpu")
    return trainer.run_inference(dl)


results = {}


def record(case, evaluations, value, track="A"):
    run = capture.build_run(evaluations, task=case, track=track, run=0, seed=None, reported=float(value),
                            clip_ids={})
    again = clips.recompute(run)
    results[case] = {"xares": float(value), "recomputed": again, "clips": run.clips, "metric": run.metric}


recorder = capture.Recorder()
with capture.hooks(recorder):
    n, C = 50, 5
    keys = [f"k{i:04d}" for i in range(n)]
    # accuracy: scores [B, C] (masked mean over one frame = the scores themselves), int labels
    scores = torch.randn(n, C, 1)
    labels = torch.randint(0, C, (n,))
    value = evaluate("accuracy", batches(scores, labels, keys))
    record("accuracy", recorder.take(), value)
    # k-fold accuracy: two test folds, X-ARES averages the fold values
    fold_values = [evaluate("accuracy", batches(scores[:20], labels[:20], keys[:20])),
                   evaluate("accuracy", batches(scores[20:], labels[20:], keys[20:]))]
    record("accuracy_kfold", recorder.take(), np.mean(fold_values))
    # mAP: multi-hot targets, scores with ties (rounded), one class without positives
    tags = (torch.rand(n, C) < 0.3).long()
    tags[:, -1] = 0
    tag_scores = torch.round(torch.rand(n, C, 1) * 10) / 10
    value = evaluate("mAP", batches(tag_scores, tags, keys))
    record("mAP", recorder.take(), value)
    # segment F1: frame logits [B, D=C, T] and frame labels [B, C, T]; 40 ms hop, 0.2 s segments -> pool 5
    T = 23  # not a multiple of the pool: the trailing frames are dropped, as X-ARES's max_pool1d does
    logits = torch.randn(n, C, T) * 2
    frames = (torch.rand(n, C, T) < 0.3).float()
    frames[:, 0] = 0  # a class never true
    for average in ("macro", "micro"):
        value = evaluate(f"segmentf1_{average}", batches(logits, frames, keys, frame=True), task_type="frame",
                         metric_args=dict(hop_size_in_ms=40, segment_length_in_s=0.2))
        record(f"segmentf1_{average}", recorder.take(), value)
    # recall@1: 12 audio clips x 5 captions, consecutive rows of one clip share its key
    groups, caps, D = 12, 5, 16
    audio = torch.randn(groups, D)
    table = {}
    rows_x, rows_y, rows_k = [], [], []
    for g in range(groups):
        for c in range(caps):
            caption = f"clip {g} caption {c}"
            table[caption] = audio[g] + torch.randn(D) * 1.5  # noisy: some hits, some misses
            rows_x.append(audio[g].view(D, 1))
            rows_y.append(caption)
            rows_k.append(f"clip{g:03d}")
    x = torch.stack(rows_x)
    dl = [((x[s:s + BATCH], torch.ones(len(x[s:s + BATCH]))), rows_y[s:s + BATCH], rows_k[s:s + BATCH])
          for s in range(0, len(rows_y), BATCH)]
    value = evaluate("recallatk_r1", dl, task_type="contrastive", model=Passthrough(text_table=table))
    record("recallatk_r1", recorder.take(), value)
    # WER_inv: hypotheses with substitutions, deletions and insertions; upper case is lowered by X-ARES
    words = "the cat sat on a mat while dogs bark at night".split()
    hyps = {}
    asr_rows = []
    for i in range(30):
        ref = " ".join(rng.choice(words, size=int(rng.integers(3, 9))))
        hyp = ref.split()
        if i % 3 == 0:
            hyp = hyp[1:]
        if i % 4 == 0:
            hyp = hyp + ["extra"]
        if i % 5 == 0:
            hyp[0] = "DOG"
        hyps[ref.upper() if i % 2 else ref] = " ".join(hyp)
        asr_rows.append(ref.upper() if i % 2 else ref)
    xa = torch.randn(30, 4, 6)
    dl = [((xa[s:s + BATCH], torch.full((len(xa[s:s + BATCH]),), 6)), [{"trans": t} for t in asr_rows[s:s + BATCH]],
           [f"utt{j:03d}" for j in range(s, min(s + BATCH, 30))]) for s in range(0, 30, BATCH)]
    value = evaluate("WER_inv", dl, task_type="asr", model=Generating(hypotheses=hyps))
    record("WER_inv", recorder.take(), value)
    # EER: one score per clip (with ties), binary targets
    eer_scores = torch.round(torch.randn(n, 1, 1) * 4) / 4
    binary = torch.randint(0, 2, (n,))

    class Squeeze(Passthrough):
        def forward(self, x, y=None, return_loss=False):
            return x.squeeze(-1), y

    try:  # X-ARES 0.1.3 passes roc_curve's pos_label positionally, which sklearn 1.9 refuses
        value = evaluate("EER", batches(eer_scores, binary, keys), model=Squeeze())
        record("EER", recorder.take(), value)
    except TypeError as exc:
        recorder.take()
        results["EER"] = {"xares_error": f"{type(exc).__name__}: {exc}"}
    # MSE / MAE: regression on one output
    target = torch.randn(n)
    pred = (target + torch.randn(n) * 0.5).view(n, 1, 1)
    for metric in ("MSE", "MAE"):
        value = evaluate(metric, batches(pred, target, keys), model=Squeeze())
        record(metric, recorder.take(), value)
    # Track B: X-ARES's kNN (accuracy) on generated features
    train_x, train_y = torch.randn(80, 16, 1), torch.randint(0, 4, (80,))
    test_x, test_y = torch.randn(n, 16, 1), torch.randint(0, 4, (n,))
    knn = KNNTrainer(num_classes=4)
    value = knn.train_and_eval(batches(train_x, train_y, [f"t{i}" for i in range(80)]), batches(test_x, test_y, keys))
    record("knn_accuracy", recorder.take(), value, track="B")

print(json.dumps({"clips_parity": results}))
