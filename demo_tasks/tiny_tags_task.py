"""Tiny tags: multi-label clips mixing one to three of four sources, scored by mAP (data: harness/demodata/tiny.py)."""

from typing import Any, Dict

import torch

from xares.task import TaskConfig


def tiny_tags_config(encoder) -> TaskConfig:
    data_key = "labels"
    class_label_maps = {"hum": 0, "whistle": 1, "hiss": 2, "click": 3}

    def manyhot_label_map(x: Dict[str, Any]):
        # As fsd50k's: a multi-hot vector returned as a list, which X-ARES's clip collation stacks
        # (a tensor would be padded into a (tensor, lengths) pair instead).
        target_ids = [class_label_maps[item] for item in x[data_key]]
        target_vec = torch.zeros(len(class_label_maps))
        target_vec.scatter_(0, torch.tensor(target_ids), 1)
        return target_vec.tolist()

    return TaskConfig(
        batch_size_encode=8,
        batch_size_train=8,  # tens of clips: several optimiser steps per epoch
        criterion="BCEWithLogitsLoss",
        do_knn=False,
        encoder=encoder,
        epochs=10,
        eval_weight=14,
        formal_name="Tiny Tags",
        learning_rate=1e-2,
        label_processor=manyhot_label_map,
        metric="mAP",
        name="tiny_tags",
        output_dim=len(class_label_maps),
        private=False,
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
