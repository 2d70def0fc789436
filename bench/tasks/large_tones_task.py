"""Large tones: the tiny tones task with 1800 clips (about 37 minutes of audio), where the constant
costs of a submission no longer dominate (data: bench/large_suite.py)."""

from xares.task import TaskConfig


def large_tones_config(encoder) -> TaskConfig:
    class_label_maps = {"tone_low": 0, "tone_mid": 1, "tone_high": 2, "noise_white": 3, "noise_brown": 4}
    return TaskConfig(
        batch_size_encode=16,
        batch_size_train=32,
        do_knn=True,
        encoder=encoder,
        epochs=10,
        eval_weight=300,
        formal_name="Large Tones",
        learning_rate=1e-3,
        label_processor=lambda x: class_label_maps[x["label"]],
        metric="accuracy",
        name="large_tones",
        output_dim=len(class_label_maps),
        private=False,
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
