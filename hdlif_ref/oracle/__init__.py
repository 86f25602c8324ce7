"""The oracle: golden vectors (SPEC sections 6-7), their checker, ``recompute``, and ``verify`` (E1-E20).

Not deployment: other implementations prove themselves against it (docs/golden.md).
"""
from .golden import GoldenFileError, check_golden, read_golden, recompute, write_golden

__all__ = ["GoldenFileError", "check_golden", "read_golden", "recompute", "write_golden"]
