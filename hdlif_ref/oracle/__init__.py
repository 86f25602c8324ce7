"""The oracle: golden vectors (SPEC sections 6-7), their checker, ``recompute``, ``training_step``, ``verify``.

Other implementations of HD-LIF (PyTorch, JAX, hardware models) prove themselves
against it; it is not deployment (docs/design.md). For notebooks::

    from hdlif_ref import oracle
    oracle.write("golden.h5")                      # every kind of SPEC sections 6-7
    report = oracle.check("their.h5", profile="float32")
    report.verdict, report.rows, report.notes, report.to_json()
    oracle.recompute("conv2d", {"x": x, "w": w, "grad_y": g}, {"stride": 2, "weight": "ternary"})
    loss, grads = oracle.training_step(model, x, y, method="online", steps=[2, 4])

Formats, kinds, fields, attrs, synonyms and profiles: docs/golden.md.
"""
from .check import CaseReport, Report, Row, check, list_cases
from .reader import GoldenCase, GoldenFile, GoldenFileError, read_golden
from .model_case import training_step
from .recompute import recompute
from .schema import KINDS, PROFILES
from .write import write

__all__ = ["check", "write", "recompute", "training_step", "read_golden", "list_cases", "Report", "CaseReport",
           "Row", "GoldenCase", "GoldenFile", "GoldenFileError", "KINDS", "PROFILES"]

