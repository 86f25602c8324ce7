"""Per-op overhead of the autodiff engine against plain NumPy and HIPS ``autograd``.

Run: ``python -m benchmarks.bench_autograd``. A chain of 100 element-wise ops
(``* c``, ``+ c``, ``tanh``, ``- c``, repeated 25 times) is run forward and
backward on a tiny tensor (shape [8], where only overhead counts) and on a
[256, 256] tensor (where arithmetic counts). In the same run: the same chain in
plain NumPy (forward only: the floor) and, if installed, in HIPS autograd
(``pip install autograd``), a NumPy-based peer. Target (issue 2): per-op
overhead no worse than HIPS autograd, ratio <= 1.0.
"""
from __future__ import annotations

import numpy as np

from benchmarks._timing import interleaved, machine_description
from hdlif_ref.autograd import Tensor, ops

OPS_IN_CHAIN = 100


def chain_ours(x: Tensor) -> Tensor:
    y = x
    for _ in range(OPS_IN_CHAIN // 4):
        y = ops.tanh(y * 1.0001 + 0.5) - 0.25
    return y.sum()


def chain_numpy(x: np.ndarray) -> float:
    y = x
    for _ in range(OPS_IN_CHAIN // 4):
        y = np.tanh(y * 1.0001 + 0.5) - 0.25
    return y.sum()


def run(repeats: int = 20) -> dict:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        autograd = None

    rows = {}
    for label, shape in (("[8]", (8,)), ("[256, 256]", (256, 256))):
        data = np.random.default_rng(0).standard_normal(shape)
        inner = 50 if shape == (8,) else 2

        def ours():
            x = Tensor(data, requires_grad=True)
            chain_ours(x).backward()
            return x.grad

        hips_grad = None
        if autograd is not None:
            def hips_loss(x):
                y = x
                for _ in range(OPS_IN_CHAIN // 4):
                    y = anp.tanh(y * 1.0001 + 0.5) - 0.25
                return anp.sum(y)
            hips_grad = autograd.grad(hips_loss)
            np.testing.assert_allclose(hips_grad(data), ours(), rtol=1e-12)
        # the three side by side, round by round (a drift of the machine's speed hits all alike)
        fns = [lambda: chain_numpy(data), ours] + ([lambda: hips_grad(data)] if hips_grad else [])
        timings = interleaved(fns, repeats=repeats, inner=inner)
        numpy_t, ours_t = timings[0], timings[1]
        hips_t = timings[2] if hips_grad else None
        rows[label] = (numpy_t, ours_t, hips_t)
    return rows


def main() -> None:
    print(f"# autograd overhead: {OPS_IN_CHAIN}-op chain, forward + backward, median of 20 interleaved rounds [min, max]")
    print(f"# {machine_description()}")
    print("| shape | NumPy fwd only | ours fwd+bwd | HIPS autograd fwd+bwd | ours per op (us) "
          "| HIPS per op (us) | ours / HIPS |")
    print("|---|---|---|---|---|---|---|")
    for label, (numpy_t, ours_t, hips_t) in run().items():
        per_op = ours_t.median / OPS_IN_CHAIN * 1e6
        if hips_t is None:
            hips_cell, hips_per_op, ratio = "not installed", "-", "-"
        else:
            hips_cell = hips_t.ms()
            hips_per_op = f"{hips_t.median / OPS_IN_CHAIN * 1e6:.2f}"
            ratio = f"{ours_t.median / hips_t.median:.2f}"
        print(f"| {label} | {numpy_t.ms()} | {ours_t.ms()} | {hips_cell} | {per_op:.2f} | {hips_per_op} | {ratio} |")


if __name__ == "__main__":
    main()
