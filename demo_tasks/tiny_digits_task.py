"""Tiny digits: five digit words spoken by espeak-ng in several voices, speeds and pitches (data: harness/demodata/tiny.py)."""

from xares.task import TaskConfig


def tiny_digits_config(encoder) -> TaskConfig:
    class_label_maps = {"one": 0, "two": 1, "three": 2, "four": 3, "five": 4}
    return TaskConfig(
        batch_size_encode=8,
        batch_size_train=8,  # tens of clips: several optimiser steps per epoch
        do_knn=True,
        encoder=encoder,
        epochs=10,
        eval_weight=20,
        formal_name="Tiny Digits",
        learning_rate=1e-2,
        label_processor=lambda x: class_label_maps[x["label"]],
        metric="accuracy",
        name="tiny_digits",
        output_dim=len(class_label_maps),
        private=False,
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
