"""The paper's ablation at small scale on a CPU (issues 10, 22): 9 rows x n paired seeds x 2 datasets.

Rows (ternary synapses except the two LIF rows, float32 as the paper's LIF row):

1. LIF (SPEC E7), online, K = 1: the paper's baseline row;
2. HD-LIF, online, K = 1;
3. HD-LIF, STBP (SPEC E6': online should match it);
4. LIF, STBP (the gap online training opens for LIF);
5. HD-LIF + 4-bit spikes (E13);
6. HD-LIF + 50% Parallel (E8);
7. HD-LIF + 4-bit + 50% Parallel;
8. HD-LIF + Mem-BN (E9) + SECA_I (E14);
9. (supplementary) HD-LIF, online, K = T.

Datasets: the embedded digits (static, T = 4) and event-digits (temporal, T = 8),
both made harder in a documented way (:data:`DATASETS`) so the rows separate.
Every row of a dataset uses the same epochs, optimizer and schedule.

**Paired design.** One task is one (dataset, row, seed). The seed feeds
``np.random.SeedSequence`` in :class:`~hdlif_ref.training.run.Run`, whose children
are the initialization, data-order and step-draw streams, and it also fixes the
data split (``data_settings``); rows change only model and method settings. So
seed ``i`` gives every row of a dataset the same split, the same initialization
stream and the same batch order, and the claims are judged on paired differences
(:mod:`.stats`, :data:`CLAIMS`).

The sweep itself (resume, Dask) is :mod:`.sweep`; the report is :mod:`.ablation_report`.
"""
from __future__ import annotations

import math
import os
import platform
import time
import tracemalloc

import numba

from .._version import __version__
from .config import resolve_config
from .run import Run, deployment_report
from .stats import Claim, Comparison, ordering

ROWS: list[tuple[str, dict]] = [
    ("LIF, online", dict(neuron="lif", weight_mode="fp32", method="online")),
    ("HD-LIF, online K=1", dict(neuron="hdlif", method="online")),
    ("HD-LIF, STBP", dict(neuron="hdlif", method="stbp")),
    ("LIF, STBP", dict(neuron="lif", weight_mode="fp32", method="stbp")),
    ("HD-LIF + 4-bit", dict(neuron="hdlif", spike_bits=4)),
    ("HD-LIF + 50% Parallel", dict(neuron="hdlif", parallel_fraction=0.5)),
    ("HD-LIF + 4-bit + 50% Parallel", dict(neuron="hdlif", spike_bits=4, parallel_fraction=0.5)),
    ("HD-LIF + Mem-BN + SECA", dict(neuron="membn", seca="I")),
    # supplementary (not in the paper's table): every step backpropagated, the same gradient
    # signal per batch as STBP, to separate E6' (direction) from K = 1 (amount of signal)
    ("HD-LIF, online K=T (suppl.)", dict(neuron="hdlif", method="online", K="all")),
]
LABELS = [label for label, _ in ROWS]

#: Common settings per dataset (every row overrides only what it changes).
DATASETS: dict[str, dict] = {
    "digits": dict(dataset="digits", T=4, train_fraction=0.25, noise=0.6, width=0.5, epochs=12, batch_size=32,
                   lr=3e-3, weight_mode="ternary", spike_bits=None, K=1, eval_batch_size=512),
    "event-digits": dict(dataset="event-digits", T=8, train_fraction=0.5, noise=0.05, width=0.5, epochs=20,
                         batch_size=32, lr=3e-3, weight_mode="ternary", spike_bits=None, K=1, eval_batch_size=512),
}

#: ``--quick``: a smoke run of every path (numbers at chance level, not results).
QUICK = dict(train_fraction=0.1, width=0.25, epochs=1)
SEEDS = 10
QUICK_SEEDS = 2
#: Test samples the deployment counts (SOPs, NOPs; E19) are measured on.
DEPLOY_SAMPLES = 256
#: Bumped when a task's computation changes meaning (its stored results then no longer match).
TASK_FORMAT = 1

#: The paper's CIFAR-100 ablation (ResNet-18, T = 4; SPEC section 5), test accuracy %.
PAPER = {"LIF, online": 71.75, "HD-LIF, online K=1": 80.16, "HD-LIF + 4-bit": 79.62,
         "HD-LIF + 50% Parallel": 78.82, "HD-LIF + 4-bit + 50% Parallel": 78.61}

#: A match claim (``~``) holds when the paired difference is within this many accuracy points.
MATCH_MARGIN = 1.0

_R = dict(enumerate(LABELS, 1))
#: The claims the report judges, in the paper's words; orderings list every pair they imply.
CLAIMS: list[Claim] = [
    Claim("HD-LIF beats LIF under online training (paper: +8.41)", (Comparison(_R[2], _R[1], +1),)),
    Claim(f"online training matches STBP for HD-LIF (SPEC E6'; match: within {MATCH_MARGIN:g} point)",
          (Comparison(_R[2], _R[3], 0, MATCH_MARGIN),)),
    Claim("... with every step backpropagated (supplementary row 9)", (Comparison(_R[9], _R[3], 0, MATCH_MARGIN),)),
    Claim("online training loses to STBP for LIF", (Comparison(_R[1], _R[4], -1),)),
    Claim("4-bit spikes cost accuracy (paper: -0.54)", (Comparison(_R[5], _R[2], -1),)),
    Claim("50% Parallel costs accuracy (paper: -1.34)", (Comparison(_R[6], _R[2], -1),)),
    Claim("4-bit + 50% Parallel costs the most (paper: -1.55; below rows 2, 5 and 6)",
          (Comparison(_R[7], _R[2], -1), Comparison(_R[7], _R[5], -1), Comparison(_R[7], _R[6], -1))),
    Claim("Mem-BN + SECA adds accuracy (paper: +0.32 to +1.80)", (Comparison(_R[8], _R[2], +1),)),
    ordering("the paper's order of its five rows, 2 > 5 > 6 > 7 > 1 (SPEC section 5)",
             [_R[2], _R[5], _R[6], _R[7], _R[1]]),
]


def parse_rows(text: str | None) -> list[str]:
    """``"1,2,5"`` (row numbers, 1-based) -> labels; ``None`` or ``"all"``: every row."""
    if text is None or text.strip().lower() == "all":
        return list(LABELS)
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= len(LABELS):
            raise ValueError(f"--rows {text!r}: {part!r} is not a row number; allowed: 1..{len(LABELS)} or 'all'")
        if _R[int(part)] not in out:
            out.append(_R[int(part)])
    if not out:
        raise ValueError(f"--rows {text!r} names no row")
    return sorted(out, key=LABELS.index)


def make_tasks(datasets: list[str], rows: list[str] | None = None, seeds: int = SEEDS, quick: bool = False,
               overrides: dict | None = None) -> list[dict]:
    """One task per (dataset, row, seed ``0..seeds-1``): the full resolved config, JSON-able.

    ``overrides`` change the common settings of every dataset (tests use it for tiny runs).
    """
    unknown = [n for n in datasets if n not in DATASETS]
    if unknown or not datasets:
        raise ValueError(f"datasets {datasets!r}; allowed: {', '.join(DATASETS)}")
    if seeds < 1:
        raise ValueError(f"seeds={seeds!r} must be >= 1")
    rows = list(LABELS) if rows is None else rows
    settings = dict(ROWS)
    tasks = []
    for name in datasets:
        base = dict(DATASETS[name], **(QUICK if quick else {}), **(overrides or {}))
        for label in rows:
            for seed in range(seeds):
                config = resolve_config(dict(base, **settings[label], seed=seed))
                tasks.append({"kind": "hdlif-ref ablation", "format": TASK_FORMAT, "code_version": __version__,
                              "dataset": name, "row": label, "seed": seed, "config": config,
                              "deploy_samples": DEPLOY_SAMPLES})
    return tasks


def task_cost(task: dict) -> float:
    """A rough relative run time of a task (for the sweep's order and ETA, never its results).

    Training work grows with epochs x T x the training fraction; K = T backpropagates every
    step (measured: about twice the time of K = 1 on event-digits, T = 8).
    """
    c = task["config"]
    return c["epochs"] * c["T"] * c["train_fraction"] * (2.0 if c["K"] == "all" else 1.0)


def peak_step_memory(run: Run) -> float:
    """Peak traced memory (MB) of one training step on one batch (NumPy reports to tracemalloc)."""
    x, y = next(iter(run.train_loader))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run.trainer.train_batch(x, y)
        return (tracemalloc.get_traced_memory()[1] - base) / 1e6
    finally:
        tracemalloc.stop()


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # a diverged loss is stored as null, not as NaN


#: How many kernel threads a sweep task may use (set by ``hdlif-ref ablation`` for its local workers).
THREADS_ENV = "HDLIF_REF_THREADS"


def run_task(task: dict) -> dict:
    """Train and evaluate one (dataset, row, seed); ``{"result": ..., "measurement": ...}``.

    ``result`` depends on the task only (same numbers on any worker, in any order);
    ``measurement`` holds wall times, traced memory and where it ran.
    """
    start = time.perf_counter()
    threads = os.environ.get(THREADS_ENV)
    if threads:
        numba.set_num_threads(min(max(1, int(threads)), numba.config.NUMBA_NUM_THREADS))
    config = resolve_config(task["config"])
    run = Run(config)
    epoch_seconds, train = [], None
    for _ in range(config["epochs"]):
        t0 = time.perf_counter()
        train = run.trainer.train_epoch(run.train_loader)
        epoch_seconds.append(time.perf_counter() - t0)
        run.schedule.step()
    test = run.trainer.evaluate(run.test_loader)
    report = deployment_report(run.model, run.data, samples=task["deploy_samples"])
    result = {"test_accuracy": float(test.accuracy), "test_loss": _finite(test.loss),
              "train_accuracy": float(train.accuracy), "train_loss": _finite(train.loss),
              "parameter_memory_mb": float(report["parameter_memory_mb"]), "sops": float(report["sops"]),
              "macs": float(report["macs"]), "nops": float(report["nops"]),
              "energy_uj": float(report["energy_mj"]) * 1e3}
    peak = peak_step_memory(run)  # after everything above: this extra step changes the model
    measurement = {"seconds": time.perf_counter() - start, "seconds_per_epoch": epoch_seconds,
                   "peak_step_mb": peak, "host": platform.node(), "pid": os.getpid(),
                   "package": os.path.dirname(os.path.abspath(__file__))}
    return {"result": result, "measurement": measurement}
