"""Training: online (SPEC E16) and STBP (E17) loops, losses, optimizers, schedules, checkpoints."""
from .checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from .losses import mixup, mixup_cross_entropy, per_step_cross_entropy
from .optim import SGD, Adam, AdamW, Optimizer, clip_grad_norm, no_weight_decay, param_groups
from .progress import MetricsLog, Progress, format_metrics, read_metrics
from .schedules import ConstantSchedule, CosineSchedule, LinearWarmup, Schedule, StepSchedule
from .trainer import EpochResult, NonFiniteError, OnlineTrainer, STBPTrainer, Trainer

__all__ = [
    # trainers (trainer.py): SPEC E16, E17, and Trainer.fit
    "Trainer", "OnlineTrainer", "STBPTrainer", "EpochResult", "NonFiniteError",
    # optimizers (optim.py)
    "Optimizer", "SGD", "Adam", "AdamW", "param_groups", "no_weight_decay", "clip_grad_norm",
    # schedules (schedules.py)
    "Schedule", "ConstantSchedule", "CosineSchedule", "StepSchedule", "LinearWarmup",
    # losses (losses.py)
    "per_step_cross_entropy", "mixup", "mixup_cross_entropy",
    # checkpoints (checkpoint.py)
    "save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT", "FORMAT_VERSION",
    # progress and logs (progress.py)
    "Progress", "MetricsLog", "read_metrics", "format_metrics",
]
