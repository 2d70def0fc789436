"""Tiny tones: three tone bands and two noise colours, clips at 8, 16 and 22.05 kHz (data: harness/demodata/tiny.py)."""

from xares.task import TaskConfig


def tiny_tones_config(encoder) -> TaskConfig:
    class_label_maps = {"tone_low": 0, "tone_mid": 1, "tone_high": 2, "noise_white": 3, "noise_brown": 4}
    return TaskConfig(
        batch_size_encode=8,
        batch_size_train=8,  # tens of clips: several optimiser steps per epoch
        do_knn=True,
        encoder=encoder,
        epochs=10,
        eval_weight=20,
        formal_name="Tiny Tones",
        learning_rate=1e-2,
        label_processor=lambda x: class_label_maps[x["label"]],
        metric="accuracy",
        name="tiny_tones",
        output_dim=len(class_label_maps),
        private=False,
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
