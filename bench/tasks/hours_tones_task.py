"""Hours tones: the tiny tones task with 9000 clips (about 3.1 hours of audio), five times the
larger suite's clips with the same distribution, so that the two suites' times give what a run costs
per audio-hour and what it costs once (data: bench/large_suite.py, suite `hours`)."""

from xares.task import TaskConfig


def hours_tones_config(encoder) -> TaskConfig:
    class_label_maps = {"tone_low": 0, "tone_mid": 1, "tone_high": 2, "noise_white": 3, "noise_brown": 4}
    return TaskConfig(
        batch_size_encode=16,
        batch_size_train=32,
        do_knn=True,
        encoder=encoder,
        epochs=10,
        eval_weight=300,
        formal_name="Hours Tones",
        learning_rate=1e-3,
        label_processor=lambda x: class_label_maps[x["label"]],
        metric="accuracy",
        name="hours_tones",
        output_dim=len(class_label_maps),
        private=False,
        test_split="test",
        train_split="train",
        valid_split="valid",
        zenodo_id=None,
    )
