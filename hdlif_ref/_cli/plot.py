"""``hdlif-ref plot``: PNG figures (needs matplotlib, the ``viz`` extra).

    hdlif-ref plot raster CKPT      spike raster of every neuron layer on a few test samples
    hdlif-ref plot membrane [CKPT]  membrane traces of chosen neurons with their thresholds
    hdlif-ref plot curves RUN_DIR   loss, accuracy and learning rate per epoch (metrics.jsonl)
    hdlif-ref plot eps [CKPT]       the eps[i, t] matrix of one neuron (SPEC E4) as a heat map

``membrane`` and ``eps`` without a checkpoint drive HD-LIF neurons with a seeded
random current (``--T``, ``--lam``, ``--theta``, ``--seed``). With a checkpoint the
network runs in eval mode, one step at a time as deployed, on test samples; a
Mem-BN layer's ``eps`` is that of its re-parameterized HD-LIF (SPEC E10), a Parallel
layer's is diagonal (E8, no state).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from . import CLIError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subs = parser.add_subparsers(dest="plot_kind", metavar="KIND", required=True)

    def network(p, required: bool):
        if required:
            p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by hdlif-ref train")
        else:
            p.add_argument("checkpoint", metavar="CKPT", nargs="?",
                           help="a checkpoint (default: HD-LIF neurons driven by a random current)")
        p.add_argument("--data-dir", help="directory of the dataset files (default: the run's)")

    def synthetic(p):
        p.add_argument("--T", type=int, default=8, help="without CKPT: time steps (default 8)")
        p.add_argument("--lam", type=float, default=0.5, help="without CKPT: leak lam (default 0.5)")
        p.add_argument("--theta", type=float, default=1.0, help="without CKPT: threshold (default 1.0)")
        p.add_argument("--seed", type=int, default=0, help="without CKPT: seed of the current (default 0)")

    p = subs.add_parser("raster", help="spike raster per neuron layer")
    network(p, True)
    p.add_argument("--samples", type=int, default=4, help="test samples, one after another (default 4)")
    p.add_argument("--max-neurons", type=int, default=None,
                   help="at most this many neurons per layer (default: as many as the panel height shows apart, "
                        "3 pixels each; evenly spaced ones when not all fit)")
    p.add_argument("--panel-height", type=float, default=2.4,
                   help="height of one layer's panel in inches at 110 dpi (default 2.4); taller shows more neurons")
    p.add_argument("--out", help="PNG file (default: raster.png beside CKPT, or plots/raster.png without one)")

    p = subs.add_parser("membrane", help="membrane traces of chosen neurons with their thresholds")
    network(p, False)
    synthetic(p)
    p.add_argument("--layer", help="neuron layer (default: the first)")
    p.add_argument("--neurons", help="comma-separated neuron indices within one sample (default: three that "
                                     "fire, or 0,1,2)")
    p.add_argument("--sample", type=int, default=0, help="test sample (default 0)")
    p.add_argument("--out", help="PNG file (default: membrane.png beside CKPT, or plots/membrane.png without one)")

    p = subs.add_parser("curves", help="training curves from a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (holds metrics.jsonl)")
    p.add_argument("--out", help="PNG file (default RUN_DIR/curves.png)")

    p = subs.add_parser("eps", help="the eps[i, t] matrix of one neuron as a heat map (SPEC E4)")
    network(p, False)
    synthetic(p)
    p.add_argument("--layer", help="neuron layer (default: the first)")
    p.add_argument("--neuron", type=int, help="neuron index within one sample (default: the one that "
                                              "fires most)")
    p.add_argument("--sample", type=int, default=0, help="test sample (default 0)")
    p.add_argument("--out", help="PNG file (default: eps.png beside CKPT, or plots/eps.png without one)")


def run(args: argparse.Namespace) -> int:
    from ..deploy import plots

    try:
        plots._figure(1)  # fail early, before loading anything, if matplotlib is missing
    except plots.MatplotlibMissing as exc:
        raise CLIError(f"hdlif-ref plot: {exc}") from None
    if args.plot_kind != "curves" and args.out is None:
        # beside the checkpoint (a run directory), else in ./plots/: never a stray file in a checkout (.gitignore)
        checkpoint = getattr(args, "checkpoint", None)
        folder = os.path.dirname(os.path.abspath(checkpoint)) if checkpoint else "plots"
        args.out = os.path.join(folder, f"{args.plot_kind}.png")
        os.makedirs(folder, exist_ok=True)
    path = {"raster": _raster, "membrane": _membrane, "curves": _curves, "eps": _eps}[args.plot_kind](args, plots)
    print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------- data
def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"--{name}={value} must be >= 1")
    return value


def network_activity(checkpoint: str, data_dir: str | None, samples: int, first: int = 0):
    """Run a checkpoint's network on test samples ``first .. first + samples - 1`` (eval, one step at a time).

    Returns ``{layer: (module, I, s)}`` in depth order, ``I``/``s``: ``[T, N, ...]``, the input
    current and emitted spikes of every neuron layer, recorded by a :class:`Monitor`. The
    input is encoded as in the run's training (``encoding``).
    """
    from ..autograd import Tensor, no_grad
    from ..datasets.encoders import encode
    from ..layers.monitor import Monitor
    from ..training.run import load_trained

    config, data, model = load_trained(checkpoint, data_dir)
    if not 0 <= first < len(data.test) or first + samples > len(data.test):
        raise ValueError(f"samples {first}..{first + samples - 1} are outside the test split "
                         f"({len(data.test)} samples)")
    x = data.test.take(np.arange(first, first + samples))[0]
    if data.kind == "events":
        x = np.moveaxis(x, 1, 0)  # [N, T, ...] -> [T, N, ...]
    elif config["encoding"] != "direct":
        x = encode(np.clip(x, 0, 1), model.T, config["encoding"], np.random.default_rng(config["seed"]))
    model.eval().set_step_mode("s").reset_state()
    with Monitor(model, record=("spikes", "inputs")) as monitor, no_grad():
        for t in range(model.T):
            step = x[t] if x.ndim == 5 else x
            model(Tensor(np.ascontiguousarray(step, dtype=np.float32)))
    modules = dict(model.named_modules())
    return {name: (modules[name], monitor.inputs[name].astype(np.float64), monitor.spikes[name].astype(np.float64))
            for name in monitor.layers}


def _pick_layer(activity: dict, layer: str | None):
    if layer is None:
        layer = next(iter(activity))
    if layer not in activity:
        raise ValueError(f"--layer {layer!r} is not a neuron layer of this network; neuron layers: "
                         f"{', '.join(activity)}")
    return layer, activity[layer]


def _param(p, T: int, channel: int) -> np.ndarray:
    """A neuron parameter ``[T]`` or ``[T, C]`` for one channel, float64 ``[T]``."""
    data = np.asarray(getattr(p, "data", p), dtype=np.float64)
    return data if data.ndim == 1 else data[:, channel]


def neuron_records(module, I: np.ndarray, sample: int):
    """``(m, u, mhat, s, theta, chi_sub_lam)`` for every neuron of one sample, flattened ``[T, neurons]``.

    ``lam_eff`` is the leak of the equivalent vanilla HD-LIF (Mem-BN: ``lamhat``, E10;
    Parallel: 0); ``m`` the charge that is compared with ``theta``.
    """
    from ..neurons import LIF, MemBNHDLIF, ParallelHDLIF

    T = I.shape[0]
    step_shape = I.shape[2:]  # [C, ...] (the channel is dim 1 of a step [N, C, ...]), or [] for [T, N]
    channel = (np.repeat(np.arange(step_shape[0]), int(np.prod(step_shape[1:]))) if step_shape
               else np.zeros(1, dtype=int))
    one = I[:, sample:sample + 1]
    flat = lambda a: np.asarray(a, dtype=np.float64).reshape(T, -1)  # noqa: E731
    theta = np.stack([_param(module.theta, T, c) for c in channel], axis=1)
    if isinstance(module, ParallelHDLIF):
        m, u, mhat, lam = flat(one), None, None, np.zeros_like(theta)
        s = np.where(m >= theta, m - theta, 0.0)
        return m, u, mhat, s, theta, lam, "Parallel HD-LIF"
    if isinstance(module, MemBNHDLIF):
        rec = module.record(one)
        rep = module.reparameterize()
        lam = np.stack([_param(rep.neuron.lam, T, c) for c in channel], axis=1)
        return flat(rec.m), flat(rec.u), flat(rec.mhat), flat(rec.s), theta, lam, "Mem-BN HD-LIF"
    rec = module.record(one)
    lam = np.stack([_param(module.lam, T, c) for c in channel], axis=1)
    name = "LIF" if isinstance(module, LIF) else "HD-LIF"
    return flat(rec.m), flat(rec.u), None, flat(rec.s), theta, lam, name


def synthetic_neurons(T: int, lam: float, theta: float, seed: int, count: int = 3):
    """HD-LIF neurons (E1, E2) on a seeded random current ``I ~ N(0.6 theta, 0.6 theta)``."""
    from ..neurons import hdlif_record

    _positive("T", T)
    if not theta > 0:
        raise ValueError(f"--theta={theta} must be > 0")
    rng = np.random.default_rng(seed)
    I = rng.normal(0.6 * theta, 0.6 * theta, (T, count))
    lam_t, theta_t = np.full(T, float(lam)), np.full(T, float(theta))
    rec = hdlif_record(I, lam_t, theta_t)
    tile = lambda v: np.repeat(v[:, None], count, axis=1)  # noqa: E731
    return rec.m, rec.u, None, rec.s, tile(theta_t), tile(lam_t), "HD-LIF"


def _indices(text: str | None, neurons: int, s: np.ndarray) -> list[int]:
    if text is None:
        firing = [int(k) for k in np.flatnonzero((s != 0).any(axis=0))[:3]]
        return firing or list(range(min(3, neurons)))
    try:
        chosen = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--neurons={text!r} must be comma-separated integers") from None
    bad = [k for k in chosen if not 0 <= k < neurons]
    if bad or not chosen:
        raise ValueError(f"--neurons={text!r}: indices must be in 0..{neurons - 1}")
    return chosen


# ----------------------------------------------------------------------------- figures
def _raster(args, plots) -> str:
    activity = network_activity(args.checkpoint, args.data_dir, _positive("samples", args.samples))
    if args.max_neurons is not None:
        _positive("max-neurons", args.max_neurons)
    if not 0.5 <= args.panel_height <= 40:
        raise ValueError(f"--panel-height={args.panel_height} must be in [0.5, 40] inches")
    return plots.spike_raster([(name, s) for name, (_, _, s) in activity.items()], args.out, args.max_neurons,
                              row_height=args.panel_height)


def _neurons_of(args):
    if args.checkpoint is None:
        return "random current", synthetic_neurons(args.T, args.lam, args.theta, args.seed)
    activity = network_activity(args.checkpoint, args.data_dir, 1, args.sample)
    layer, (module, I, _) = _pick_layer(activity, args.layer)
    return f"{layer}, test sample {args.sample}", neuron_records(module, I, 0)


def _membrane(args, plots) -> str:
    where, (m, u, mhat, s, theta, _, kind) = _neurons_of(args)
    traces = []
    for k in _indices(args.neurons, m.shape[1], s):
        traces.append({"label": f"{kind} neuron {k} ({where})", "m": m[:, k], "u": None if u is None else u[:, k],
                       "mhat": None if mhat is None else mhat[:, k], "s": s[:, k], "theta": theta[:, k]})
    return plots.membrane_traces(traces, args.out)


def _curves(args, plots) -> str:
    from ..training.progress import read_metrics

    path = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{args.run_dir!r} is not a run directory: no metrics.jsonl in it")
    records = read_metrics(path)
    if not records:
        raise ValueError(f"{path!r} holds no epoch yet")
    out = args.out or os.path.join(args.run_dir, "curves.png")
    return plots.training_curves(records, out, title=f"run {args.run_dir} ({len(records)} epochs)")


def _eps(args, plots) -> str:
    from ..neurons import theory
    from ..neurons.records import HDLIFRecord

    where, (m, u, mhat, s, theta, lam, kind) = _neurons_of(args)
    neurons = m.shape[1]
    k = int(np.argmax((s != 0).sum(axis=0))) if args.neuron is None else args.neuron
    if not 0 <= k < neurons:
        raise ValueError(f"--neuron={k} must be in 0..{neurons - 1}")
    compared = m[:, k] if mhat is None else mhat[:, k]
    if kind == "LIF":
        raise ValueError("eps of a LIF layer depends on the surrogate (E7, not separable); plot an HD-LIF, "
                         "Parallel or Mem-BN layer")
    # the vanilla HD-LIF that fires like this neuron (Mem-BN: E10; Parallel: lam = 0)
    rec = HDLIFRecord(I=compared[:, None], lam=lam[:, k], theta=theta[:, k], m=compared[:, None],
                      u=np.minimum(compared, theta[:, k])[:, None], s=s[:, k:k + 1])
    eps = theory.eps(rec)[:, :, 0]
    fired = compared >= theta[:, k]
    return plots.eps_heatmap(eps, args.out, f"eps[i, t] of {kind} neuron {k} ({where})\n"
                                            f"eps = chi[i,i] prod chi[j,j-1]: 0, 1 or products of lam",
                             fired)
