"""Tiny SED: frame-level sound event detection in 3 s clips, scored like DESED (data: harness/demodata/tiny.py)."""

from math import ceil

import torch

from xares.task import TaskConfig


def tiny_sed_config(encoder) -> TaskConfig:
    class_label_maps = {"beep": 0, "buzz": 1, "noise": 2}
    clip_seconds = 3.0

    def sec_to_frames(sec):
        return ceil(sec / (encoder.hop_size_in_ms / 1000))

    def label_transform(events):
        # events: [{"onset": s, "offset": s, "label": name}, ...]
        target = torch.zeros(len(class_label_maps), sec_to_frames(clip_seconds), dtype=torch.float32)
        for event in events:
            start, end = sec_to_frames(event["onset"]), sec_to_frames(event["offset"])
            target[class_label_maps[event["label"]], start:end] = 1.0
        return target

    return TaskConfig(
        batch_size_encode=8,
        batch_size_train=8,  # tens of clips: several optimiser steps per epoch
        criterion="BCEWithLogitsLoss",
        do_knn=False,
        encoder=encoder,
        epochs=10,
        eval_weight=9,
        formal_name="Tiny SED",
        learning_rate=1e-2,
        label_processor=label_transform,
        metric="segmentf1_macro",
        metric_args=dict(hop_size_in_ms=encoder.hop_size_in_ms if encoder else 0, segment_length_in_s=0.5),
        name="tiny_sed",
        output_dim=len(class_label_maps),
        private=False,
        task_type="frame",
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
