"""Tiny crop: 2-4.5 s clips encoded in 1 s crops (X-ARES's `crop_length`) (data: harness/demodata/tiny.py).

X-ARES 0.1.3 keys each encoded crop `filename + batch index`, so crops of one clip in one encode
batch share a key and all but one are dropped when read back; the harness's parity test needs this.
"""

from xares.task import TaskConfig


def tiny_crop_config(encoder) -> TaskConfig:
    class_label_maps = {"hum": 0, "whine": 1, "rain": 2}
    return TaskConfig(
        batch_size_encode=8,
        batch_size_train=8,  # tens of clips: several optimiser steps per epoch
        crop_length=1,  # whole seconds: a float crashes X-ARES's crop loop
        do_knn=True,
        encoder=encoder,
        epochs=10,
        eval_weight=9,
        formal_name="Tiny Crop",
        learning_rate=1e-2,
        label_processor=lambda x: class_label_maps[x["label"]],
        metric="accuracy",
        name="tiny_crop",
        output_dim=len(class_label_maps),
        private=False,
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
