"""Tiny ESC: an ESC-50-style 3-fold task of synthetic sound classes (data: harness/demodata/tiny.py)."""

from xares.task import TaskConfig


def tiny_esc_config(encoder) -> TaskConfig:
    class_label_maps = {"chirp_up": 0, "chirp_down": 1, "pulse_train": 2, "am_tone": 3}
    return TaskConfig(
        batch_size_encode=8,
        batch_size_train=8,  # tens of clips: several optimiser steps per epoch
        do_knn=True,
        encoder=encoder,
        epochs=10,
        eval_weight=12,  # clips per fold, as esc50's 400
        formal_name="Tiny ESC",
        k_fold_splits=[1, 2, 3],  # shards wds-audio-fold-{k}-*.tar
        learning_rate=1e-2,
        label_processor=lambda x: class_label_maps[x["label"]],
        metric="accuracy",
        name="tiny_esc",
        output_dim=len(class_label_maps),
        private=False,
        zenodo_id=None,
    )
