"""Training: the loop (`train_`, `run_steps_` with its step strategies), tasks, config, losses,
safetensors checkpoints and BN repair."""

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
from anywidth.train.loop import TrainResult, run_steps_, train_
from anywidth.train.losses import LossFn, cross_entropy_loss, image_loss
from anywidth.train.recalibrate import recalibrate_bn, recalibrate_bn_
from anywidth.train.task import (
    CLASSIFICATION,
    Task,
    classification,
    embedding_fidelity,
    super_resolution,
    task_of,
)

__all__ = [
    "CLASSIFICATION",
    "Checkpoint",
    "CheckpointError",
    "LossFn",
    "StructureHook",
    "Task",
    "TrainConfig",
    "TrainResult",
    "classification",
    "cross_entropy_loss",
    "embedding_fidelity",
    "image_loss",
    "load_model",
    "read_checkpoint",
    "recalibrate_bn",
    "recalibrate_bn_",
    "register_structure_hook",
    "run_steps_",
    "save_checkpoint",
    "super_resolution",
    "task_of",
    "train_",
]
