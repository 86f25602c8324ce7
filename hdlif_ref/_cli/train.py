"""``hdlif-ref train``: train on the embedded digits by default; every config key is a flag."""
from __future__ import annotations

import argparse
import datetime
import os
import sys

from ..training.config import CHOICES, DEFAULTS, flag, load_config_file, resolve_config
from ..training.trainer import NonFiniteError

HELP = {
    "dataset": "dataset name", "data_dir": "directory of the real dataset files", "upsample": "digits at 16x16",
    "train_fraction": "stratified fraction of the training split", "noise": "input noise (digits, event-digits)",
    "augment": "random crop/translate and flip",
    "encoding": "static images to T steps: direct (the image at every step), rate (Bernoulli spikes), latency "
                "(one spike, earlier for brighter); rate/latency read the data scaled to [0, 1]",
    "model": "network builder", "width": "channel multiplier",
    "neuron": "neuron kind (SPEC E1-E9)", "T": "time steps", "weight_mode": "synapse weights (SPEC E11-E12)",
    "spike_bits": "n-bit spikes (SPEC E13) or none", "parallel_fraction": "share of Parallel HD-LIF layers (E8)",
    "seca": "SECA attention (E14-E15): none, I, II", "per_channel": "per-channel lam/theta",
    "bn_stats": "BN running statistics per time step (SPEC E16 DC) or shared (v0.1)",
    "method": "online (E16) or stbp (E17)", "K": "steps backpropagated per batch (online): an int or all",
    "update": "optimizer step per batch or per time step", "epochs": "epochs", "batch_size": "batch size",
    "optimizer": "optimizer", "lr": "learning rate", "momentum": "SGD momentum", "weight_decay": "weight decay",
    "schedule": "learning-rate schedule", "warmup_epochs": "linear warm-up epochs",
    "label_smoothing": "label smoothing", "clip_norm": "gradient-norm clipping or none",
    "on_nonfinite": "on a NaN/Inf loss or gradient: stop (exit 1, last good checkpoint kept) or skip-batch", "seed": "random seed",
    "eval_batch_size": "evaluation batch size",
}


def _int_or(special: str):
    def parse(text: str):
        if text.lower() == special:
            return special if special != "none" else None
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer or '{special}', got {text!r}") from None
    return parse


def _float_or_none(text: str):
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _choice(key: str):
    allowed = {("none" if c is None else str(c)): c for c in CHOICES[key]}

    def parse(text: str):
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r}; allowed: {', '.join(allowed)}")
        return allowed[text]
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML or JSON file of config keys (flags override it)")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<dataset>-<neuron>-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.h5")
    parser.add_argument("--membn", action=argparse.BooleanOptionalAction, default=None,
                        help="Mem-BN (SPEC E9) on the HD-LIF neurons (same as --neuron membn / hdlif)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    for key, default in DEFAULTS.items():
        option = flag(key)
        kwargs = dict(dest=key, default=argparse.SUPPRESS, help=f"{HELP[key]} (default: {default})")
        if isinstance(default, bool):
            parser.add_argument(option, action=argparse.BooleanOptionalAction, **kwargs)
        elif key in CHOICES:
            parser.add_argument(option, type=_choice(key), metavar="{" + ",".join(
                "none" if c is None else str(c) for c in CHOICES[key]) + "}", **kwargs)
        elif key == "K":
            parser.add_argument(option, type=_int_or("all"), **kwargs)
        elif key == "spike_bits":
            parser.add_argument(option, type=_int_or("none"), **kwargs)
        elif key == "clip_norm":
            parser.add_argument(option, type=_float_or_none, **kwargs)
        elif key == "data_dir":
            parser.add_argument(option, **kwargs)
        elif isinstance(default, int):
            parser.add_argument(option, type=int, **kwargs)
        else:
            parser.add_argument(option, type=float, **kwargs)


def config_from_args(args: argparse.Namespace) -> dict:
    """Defaults, then the config file, then the flags given."""
    base = load_config_file(args.config) if args.config else {}
    overrides = {key: getattr(args, key) for key in DEFAULTS if hasattr(args, key)}
    config = resolve_config(overrides, base)
    if args.membn is not None:
        if config["neuron"] not in ("hdlif", "membn"):
            raise ValueError(f"--membn/--no-membn apply to HD-LIF neurons, not neuron={config['neuron']!r}")
        config["neuron"] = "membn" if args.membn else "hdlif"
    return config


def run(args: argparse.Namespace) -> int:
    from ..training.progress import Progress
    from ..training.run import run_training

    log = (lambda line: None) if args.quiet else print
    progress = None
    if args.quiet:
        progress = Progress(1, bars=False)
        progress.write = lambda line: None  # type: ignore[method-assign]
    epochs = None
    if args.resume:
        given = [flag(key) for key in DEFAULTS if hasattr(args, key) and key != "epochs"] + [
            name for name, value in (("--config", args.config), ("--out", args.out), ("--membn", args.membn))
            if value is not None]
        if given:
            raise ValueError(f"--resume continues a run with its saved config (only --epochs may extend it); "
                             f"drop {', '.join(given)}")
        run_dir = args.resume
        config, epochs = None, getattr(args, "epochs", None)
    else:
        config = config_from_args(args)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = args.out or os.path.join("runs", f"{config['dataset']}-{config['neuron']}-{stamp}")
    try:
        report = run_training(config, run_dir, resume=bool(args.resume), log=log, progress=progress, epochs=epochs)
    except NonFiniteError as error:
        print(f"hdlif-ref train: stopped: {error}; the last good checkpoint is "
              f"{os.path.join(run_dir, 'last.h5')} (--on-nonfinite skip-batch drops such batches)", file=sys.stderr)
        return 1
    print(format_report(report, run_dir))
    return 0


def format_report(report: dict, run_dir: str) -> str:
    from ..deploy.counts import format_energy

    lines = [
        f"run directory      {run_dir}",
        f"test accuracy      {report['test_accuracy']:.4f} (best {report['best_test_accuracy']:.4f}, "
        f"{report['epochs']} epochs, {report['seconds']:.1f} s)",
        f"parameter memory   {report['parameter_memory_mb'] * 1e3:.2f} kB (SPEC E18)",
        f"SOPs per sample    {report['sops']:,.0f} (+ {report['macs']:,.0f} MACs in the first layer; SPEC E19)",
        f"NOPs per sample    {report['nops']:,.0f} (SPEC E19)",
        f"energy per sample  {format_energy(report['energy_mj'] * 1e-3)} (45 nm table, SPEC E20)",
    ]
    return "\n".join(lines)
