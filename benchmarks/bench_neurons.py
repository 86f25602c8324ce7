"""Fused HD-LIF forward and STBP backward against memory bandwidth and the NumPy twin (issue 4).

Run: ``python -m benchmarks.bench_neurons [--quick]``. Input ``I: [4, 64, 64, 32, 32]``
float32 (per-layer ``lam``, ``theta``), the shape of the issue's target. Baselines
measured in the same run:

* ``np.copyto(dst, I)``: reads and writes one such array (2 x 64 MiB); its GB/s is
  the machine's practical streaming bandwidth;
* ``np.copy(I)``: the same with a freshly allocated output (page faults included),
  the fair baseline for our entry points, which allocate their outputs;
* the NumPy twin (``kernels/reference/neurons.py``).

"Achieved GB/s" counts the bytes a kernel must move: forward reads ``I`` and writes
``s*`` and the byte masks; the STBP backward reads ``dL/ds*``, the masks and ``I``
(to recompute ``u_{t-1}`` for ``lam``'s gradient) and writes ``dL/dI``. The kernel
rows call the Numba kernels on preallocated outputs (compare with ``copyto``); the
entry rows call the public entry points, which allocate (compare with ``np.copy``).

Targets: forward >= 50% and forward+backward >= 40% of copy bandwidth; >= 3x faster
than the NumPy twin.
"""
from __future__ import annotations

import sys

import numba
import numpy as np

from benchmarks._timing import machine_description, measure
from hdlif_ref.kernels import hdlif as K
from hdlif_ref.kernels._blocking import BLOCK, n_blocks
from hdlif_ref.kernels.reference import neurons as twin

SHAPE = (4, 64, 64, 32, 32)


def _one_thread(fn):
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn()
    finally:
        numba.set_num_threads(threads)


def run(repeats: int = 9, shape=SHAPE) -> dict:
    rng = np.random.default_rng(0)
    T = shape[0]
    E = int(np.prod(shape[1:]))
    I = (rng.standard_normal((T, 1, E)) * 1.5).astype(np.float32)
    gs = rng.standard_normal(I.shape).astype(np.float32)
    u0 = np.zeros((1, E), np.float32)
    lam, theta = np.full((T, 1), 0.5, np.float32), np.ones((T, 1), np.float32)
    s, mask, u_last = np.empty_like(I), np.empty(I.shape, np.bool_), np.empty_like(u0)
    gI, gu0 = np.empty_like(I), np.empty_like(u0)
    items = n_blocks(E)
    glam_part, gtheta_part = np.zeros((items, T, 1), np.float32), np.zeros((items, T, 1), np.float32)
    dst = np.empty_like(I)

    fwd_kernel = lambda: K._hdlif_fwd(I, u0, lam, theta, BLOCK, s, u_last, mask)  # noqa: E731
    bwd_kernel = lambda: K._hdlif_bwd(gs, u0, mask, I, u0, lam, theta, BLOCK, True,  # noqa: E731
                                      gI, gu0, glam_part, gtheta_part)
    fwd_kernel()
    bwd_kernel()
    # the kernels agree with the twin before anything is timed
    s_t, _, mask_t = twin.hdlif_forward(I, u0, lam, theta)
    assert np.array_equal(s, s_t) and np.array_equal(mask, mask_t)

    a = I.nbytes
    bytes_fwd = 2 * a + mask.nbytes
    bytes_bwd = 3 * a + mask.nbytes
    t = {
        "copyto": measure(lambda: np.copyto(dst, I), repeats=repeats),
        "copy": measure(lambda: np.copy(I), repeats=repeats),
        "fwd kernel": measure(fwd_kernel, repeats=repeats),
        "bwd kernel": measure(bwd_kernel, repeats=repeats),
        "fwd entry": measure(lambda: K.hdlif_forward.numba_impl(I, u0, lam, theta), repeats=repeats),
        "bwd entry": measure(lambda: K.hdlif_backward_stbp.numba_impl(gs, u0, mask, I, u0, lam, theta, True),
                             repeats=repeats),
        "fwd kernel 1 thread": _one_thread(lambda: measure(fwd_kernel, repeats=repeats)),
        "bwd kernel 1 thread": _one_thread(lambda: measure(bwd_kernel, repeats=repeats)),
        "fwd twin": measure(lambda: twin.hdlif_forward(I, u0, lam, theta), repeats=max(3, repeats // 3), warmup=1),
        "bwd twin": measure(lambda: twin.hdlif_backward_stbp(gs, u0, mask, I, u0, lam, theta, True),
                            repeats=max(3, repeats // 3), warmup=1),
    }
    return dict(t=t, bytes_copy=2 * a, bytes_fwd=bytes_fwd, bytes_bwd=bytes_bwd, array_mb=a / 2**20)


def main() -> None:
    quick = "--quick" in sys.argv
    r = run(repeats=3 if quick else 9, shape=(4, 16, 64, 32, 32) if quick else SHAPE)
    t = r["t"]
    gbs = lambda nbytes, timing: nbytes / timing.median / 1e9  # noqa: E731
    copy_bw, copy_alloc_bw = gbs(r["bytes_copy"], t["copyto"]), gbs(r["bytes_copy"], t["copy"])
    print(f"# HD-LIF fused kernels, I: {list(SHAPE if not quick else (4, 16, 64, 32, 32))} float32 "
          f"({r['array_mb']:.0f} MiB per array), median [min, max]")
    print(f"# {machine_description()}, Numba threads: {numba.get_num_threads()} ({numba.threading_layer()})")
    print("| what | time | bytes moved | GB/s | of copy bandwidth |")
    print("|---|---|---|---|---|")
    print(f"| np.copyto (preallocated) | {t['copyto'].ms()} | {r['bytes_copy'] / 1e6:.0f} MB | {copy_bw:.1f} | 100% |")
    print(f"| np.copy (allocates) | {t['copy'].ms()} | {r['bytes_copy'] / 1e6:.0f} MB | {copy_alloc_bw:.1f} | "
          f"{copy_alloc_bw / copy_bw:.0%} |")
    rows = [("forward kernel", t["fwd kernel"].median, r["bytes_fwd"], copy_bw, t["fwd kernel"]),
            ("STBP backward kernel", t["bwd kernel"].median, r["bytes_bwd"], copy_bw, t["bwd kernel"]),
            ("forward + backward kernels", t["fwd kernel"].median + t["bwd kernel"].median,
             r["bytes_fwd"] + r["bytes_bwd"], copy_bw, None),
            ("forward kernel, 1 thread", t["fwd kernel 1 thread"].median, r["bytes_fwd"], copy_bw,
             t["fwd kernel 1 thread"]),
            ("STBP backward kernel, 1 thread", t["bwd kernel 1 thread"].median, r["bytes_bwd"], copy_bw,
             t["bwd kernel 1 thread"]),
            ("forward + backward kernels, 1 thread", t["fwd kernel 1 thread"].median + t["bwd kernel 1 thread"].median,
             r["bytes_fwd"] + r["bytes_bwd"], copy_bw, None),
            ("forward entry (allocates)", t["fwd entry"].median, r["bytes_fwd"], copy_alloc_bw, t["fwd entry"]),
            ("forward + backward entries (allocate)", t["fwd entry"].median + t["bwd entry"].median,
             r["bytes_fwd"] + r["bytes_bwd"], copy_alloc_bw, None)]
    for label, seconds, nbytes, base, timing in rows:
        cell = timing.ms() if timing is not None else f"{seconds * 1e3:.3f} ms"
        achieved = nbytes / seconds / 1e9
        print(f"| {label} | {cell} | {nbytes / 1e6:.0f} MB | {achieved:.1f} | {achieved / base:.0%} |")
    twin_fb = t["fwd twin"].median + t["bwd twin"].median
    ours_fb = t["fwd entry"].median + t["bwd entry"].median
    print()
    print("| against the NumPy twin | twin | ours (entry points) | speed-up |")
    print("|---|---|---|---|")
    print(f"| forward | {t['fwd twin'].ms()} | {t['fwd entry'].ms()} | "
          f"{t['fwd twin'].median / t['fwd entry'].median:.1f}x |")
    print(f"| STBP backward | {t['bwd twin'].ms()} | {t['bwd entry'].ms()} | "
          f"{t['bwd twin'].median / t['bwd entry'].median:.1f}x |")
    print(f"| forward + backward | {twin_fb * 1e3:.3f} ms | {ours_fb * 1e3:.3f} ms | {twin_fb / ours_fb:.1f}x |")


if __name__ == "__main__":
    main()
