"""Training: the loop (`train_`), its config, losses, safetensors checkpoints and BN repair."""

from anywidth.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    StructureHook,
    load_model,
    read_checkpoint,
    register_structure_hook,
    save_checkpoint,
)
from anywidth.train.config import TrainConfig
from anywidth.train.loop import TrainResult, train_
from anywidth.train.losses import LossFn, cross_entropy_loss, image_loss
from anywidth.train.recalibrate import recalibrate_bn, recalibrate_bn_

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "LossFn",
    "StructureHook",
    "TrainConfig",
    "TrainResult",
    "cross_entropy_loss",
    "image_loss",
    "load_model",
    "read_checkpoint",
    "recalibrate_bn",
    "recalibrate_bn_",
    "register_structure_hook",
    "save_checkpoint",
    "train_",
]
