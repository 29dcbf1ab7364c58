"""Dataset adapters: each turns its `[dataset]` config into windows and targets."""

from __future__ import annotations

from training.config import CmapssData, SyntheticVibrationData, TrainConfig
from training.datasets.base import Split, TaskData


def build_task_data(config: TrainConfig) -> TaskData:
    data, window, hop = config.dataset, config.input.window, config.input.hop
    if isinstance(data, CmapssData):
        from training.datasets import cmapss

        return cmapss.build(data, window, hop, config.output.rul_cap, config.seed)
    if isinstance(data, SyntheticVibrationData):
        from training.datasets import vibration

        return vibration.build(data, config.task, window, hop, config.seed)
    from training.datasets import table

    return table.build(data, config.task, window, hop, config.output.rul_cap)


__all__ = ["Split", "TaskData", "build_task_data"]
