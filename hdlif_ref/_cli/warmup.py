"""``hdlif-ref warmup``: compile every Numba kernel ahead (e.g. in a Docker build), and say how long it took.

Numba compiles a kernel the first time it is called with a new combination of
argument types and stores the machine code in its cache (``__pycache__`` beside
the sources, or ``NUMBA_CACHE_DIR``); later runs load it. ``warmup`` calls every
kernel the commands use, with the types they use, on tiny inputs:

* training steps (online, single-step, and STBP, multi-step) and an evaluation of a
  small network for each neuron kind (LIF, HD-LIF with 4-bit spikes, Parallel,
  Mem-BN), each weight mode (float, binary, ternary), SECA I and II, average and
  max pooling, a residual block, in float32 and float64;
* the frozen model of a deployed network (``deploy``, ``run``);
* the paper-equation checks of ``verify`` (float64).

Then it lists the project's kernels (:data:`hdlif_ref.kernels._config.KERNELS`) that
still have no compiled version, if any, and prints the time. Run it once after
installing; a run on a warm cache only loads the cache (a few seconds).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")


class _Compiles:
    """Counts the project's kernels Numba really compiles (cache misses) while installed."""

    def __init__(self) -> None:
        import numba.core.event as ev

        outer = self

        class Listener(ev.Listener):
            def on_start(self, event):
                dispatcher = (event.data or {}).get("dispatcher")
                module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
                if module.startswith("hdlif_ref."):
                    outer.count += 1

            def on_end(self, event):
                pass

        self.count, self.listener, self._ev = 0, Listener(), ev

    def __enter__(self):
        self._ev.register("numba:compile", self.listener)
        return self

    def __exit__(self, *exc):
        self._ev.unregister("numba:compile", self.listener)


def _networks():
    """``(network, sample shape)`` pairs that together reach every layer and neuron kernel."""
    from ..models import digits_net, spiking_resnet

    rng = np.random.default_rng(0)
    tiny = dict(width=0.25, T=2, rng=rng)
    # per-layer parameters reach the kernels as read-only broadcast views, per-channel ones as
    # writable arrays: Numba compiles each kind separately, so both appear
    nets = [
        digits_net(neuron="lif", weight_mode="fp32", **tiny),
        digits_net(neuron="lif", weight_mode="fp32", per_channel=True, **tiny),
        digits_net(neuron="hdlif", weight_mode="ternary", spike_bits=4, seca="I", **tiny),
        digits_net(neuron="hdlif", weight_mode="binary", parallel_fraction=0.5, per_channel=True, **tiny),
        digits_net(neuron="membn", weight_mode="ternary", spike_bits=4, **tiny),  # train's default network
        digits_net(neuron="membn", weight_mode="binary", parallel_fraction=0.5, seca="II", per_channel=True, **tiny),
        digits_net(neuron="parallel", weight_mode="ternary", spike_bits=2, **tiny),  # frozen: spike_levels_
        spiking_resnet(18, stem="imagenet", width=0.0625, in_channels=1, num_classes=10, T=2, neuron="hdlif",
                       weight_mode="ternary", spike_bits=4, rng=rng),
    ]
    return [(net, (1, 16, 16) if net.config["builder"] == "spiking_resnet" else (1, 8, 8)) for net in nets]


def warm_training(dtype, log) -> None:
    from ..training.optim import SGD
    from ..training.trainer import OnlineTrainer, STBPTrainer

    rng = np.random.default_rng(1)
    for net, shape in _networks():
        net.to(dtype)
        x = rng.random((4,) + shape).astype(dtype)
        y = np.arange(4) % 10
        optimizer = SGD(list(net.parameters()), lr=1e-9, momentum=0.9)  # types matter, not learning
        OnlineTrainer(net, optimizer, steps="all").train_batch(x, y)
        trainer = STBPTrainer(net, optimizer)
        trainer.train_batch(x, y)
        trainer.evaluate([(x, y)])
        log(f"  trained and evaluated {net.config['builder']} ({net.config['neuron']}, "
            f"{net.config['weight_mode']}) in {np.dtype(dtype).name}")


def warm_layers(dtype, log) -> None:
    """What the networks above leave out: a convolution with a bias, batch norm's backward in eval mode, the 2x2
    average pooling (and its backward) of planes whose rows do not pair up into vector runs (an odd height)."""
    from ..autograd import Tensor, ops
    from ..layers import BatchNorm2d, Conv2d

    rng = np.random.default_rng(3)
    x = Tensor(rng.random((2, 3, 8, 8)).astype(dtype), requires_grad=True)
    conv = Conv2d(3, 4, 3, padding=1, bias=True, rng=rng).to(dtype)
    bn = BatchNorm2d(4).to(dtype).eval()
    bn(conv(x)).sum().backward()
    ops.avg_pool2d(Tensor(rng.random((2, 3, 5, 8)).astype(dtype), requires_grad=True), 2).sum().backward()
    log(f"  ran a biased convolution, an eval-mode batch norm backward and an odd-height pooling in "
        f"{np.dtype(dtype).name}")


def warm_deploy(log) -> None:
    from ..deploy.convert import freeze

    rng = np.random.default_rng(2)
    for net, shape in _networks():
        net.eval()
        frozen = freeze(net, shape)
        frozen.run(rng.random((3,) + shape).astype(np.float32), count=True)
    log("  froze and ran every network (deploy, run)")


def warm_verify(log) -> None:
    from ..oracle.verify import run_checks
    from ..kernels._threads import threading_info

    run_checks(0)
    threading_info()  # hdlif-ref info
    log("  ran the paper-equation checks (verify) and the thread report (info)")


def unexercised(kernels: list) -> list:
    """Kernels with no compiled version in this process and no caller that has one.

    A helper called only from other kernels (``lane_sum2``, ``_surrogate``) is compiled into
    its callers; when they load from the cache it is never compiled on its own, and is ready.
    """
    import inspect

    ready = [k for k in kernels if k.signatures]
    rest = [k for k in kernels if not k.signatures]
    grown = True
    while grown:  # helpers of helpers (conv._inside inside _im2col_image inside _conv_fwd)
        sources = [inspect.getsource(c.py_func) for c in ready]
        covered = [k for k in rest if any(k.py_func.__name__ + "(" in text for text in sources)]
        ready += covered
        rest = [k for k in rest if k not in covered]
        grown = bool(covered)
    return rest


def warmup(log=print) -> dict:
    """Compile (or load from the cache) every kernel; returns ``seconds``, ``compiled``, ``kernels``, ``missing``."""
    from ..kernels import _config, get_backend

    if get_backend() != "numba":
        raise ValueError(f"warmup compiles the Numba kernels, but the active backend is {get_backend()!r} "
                         f"(HDLIF_REF_BACKEND); unset it or set it to numba")
    _config.COMPILE_NOTICE.shown = True  # this command says what it does itself
    start = time.perf_counter()
    with _Compiles() as compiles:
        for dtype in (np.float32, np.float64):
            warm_training(dtype, log)
            warm_layers(dtype, log)
        warm_deploy(log)
        warm_verify(log)
    # the package's kernels (code that uses njit_parallel elsewhere, e.g. a test, registers there too)
    kernels = [k for k in _config.KERNELS if k.py_func.__module__.startswith("hdlif_ref.")]
    missing = [f"{k.py_func.__module__}.{k.py_func.__name__}" for k in unexercised(kernels)]
    return {"seconds": time.perf_counter() - start, "compiled": compiles.count, "kernels": len(kernels),
            "missing": missing}


def run(args: argparse.Namespace) -> int:
    log = (lambda line: None) if args.quiet else print
    log("warming up the Numba kernels (compiled once per machine, then loaded from the cache):")
    result = warmup(log)
    for name in result["missing"]:
        print(f"  not exercised: {name} (compiles on first use)")
    cached = result["kernels"] - len(result["missing"])
    print(f"warmup: {cached} of {result['kernels']} kernels ready, {result['compiled']} compilations, "
          f"{result['seconds']:.1f} s")
    return 0
