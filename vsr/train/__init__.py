"""`vsr train`: train or fine-tune the temporal network (vsr.temporal.network) on HR clips."""

from vsr.train.loop import (
    TrainConfig,
    TrainProgress,
    TrainResult,
    add_train_parser,
    cmd_train,
    train,
)

__all__ = [
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "add_train_parser",
    "cmd_train",
    "train",
]
