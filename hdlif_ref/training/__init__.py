"""Training: online (SPEC E16) and STBP (E17) loops, losses, optimizers, schedules, checkpoints."""
