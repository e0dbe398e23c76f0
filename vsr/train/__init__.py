"""Train or fine-tune the temporal network (vsr.temporal.network) on HR clips.

The command, `vsr train`, is vsr.cli.train; `python -m vsr.train` runs it too.
"""

from vsr.train.loop import (
    TrainConfig,
    TrainProgress,
    TrainResult,
    train,
)

__all__ = [
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "train",
]
