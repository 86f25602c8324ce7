"""``hdlif-ref deploy CKPT OUT.h5`` and ``hdlif-ref run OUT.h5 --data NAME``: the frozen model (docs/deploy.md)."""
from __future__ import annotations

import argparse
import time

import numpy as np


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by hdlif-ref train")
    parser.add_argument("output", metavar="OUT.h5", help="where to write the frozen model")
    parser.add_argument("--data-dir", help="dataset directory (to rebuild the run's network)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.h5", help="a frozen model written by hdlif-ref deploy")
    parser.add_argument("--data", help="dataset to run on (default: the one the model was trained on)")
    parser.add_argument("--data-dir", help="dataset directory")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None, help="run on the first LIMIT test samples only")


def print_payload(frozen, prefix: str = "") -> None:
    payload = frozen.payload_bytes()
    print(f"{prefix}parameter payload  {payload:,} bytes = {payload / 1e6:.4f} MB (SPEC E18: codes packed, "
          f"scales and neuron parameters float32)")


def deploy(args: argparse.Namespace) -> int:
    from ..deploy.convert import freeze
    from ..deploy.frozen_io import save_frozen
    from ..training.run import data_settings, load_trained

    config, data, model = load_trained(args.checkpoint, args.data_dir)
    frozen = freeze(model, (data.in_channels, data.input_size, data.input_size))
    frozen.meta.update(dataset=config["dataset"], data=data_settings(config), encoding=config["encoding"],
                       source=str(args.checkpoint))
    save_frozen(frozen, args.output)
    print(f"wrote {args.output}: {config['model']} ({config['neuron']}, {config['weight_mode']} synapses, "
          f"T={frozen.T}), {len(frozen.ops)} top-level ops")
    print_payload(frozen)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..datasets import DataLoader, get_dataset
    from ..datasets.encoders import EncodedLoader
    from ..datasets.registry import split_options
    from ..deploy.frozen_io import load_frozen
    from ..deploy.counts import OpCounts, energy, format_energy

    if args.batch_size < 1:
        raise ValueError(f"--batch-size={args.batch_size} must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit={args.limit} must be >= 1")
    frozen = load_frozen(args.model)
    name = args.data or frozen.meta.get("dataset")
    if name is None:
        raise ValueError("run: the model does not name its dataset; give --data NAME")
    # the training run's data settings (noise, up-sampling, seed) decide the test split
    settings = dict(frozen.meta.get("data", {})) if name == frozen.meta.get("dataset") else {}
    settings["T"] = frozen.T
    _, options = split_options(name, **settings)
    encoding = frozen.meta.get("encoding", "direct") if name == frozen.meta.get("dataset") else "direct"
    if encoding != "direct":  # the encoding it was trained with, on images scaled to [0, 1]
        options["normalize"] = "unit"
    test = get_dataset(name, "test", args.data_dir, **options)
    if args.limit is not None:
        from ..datasets.base import ArrayDataset
        x, y = test.take(np.arange(min(args.limit, len(test))))
        test = ArrayDataset(x, y, test.num_classes, test.kind, test.name, "test")
    correct, seen = 0, 0
    totals = OpCounts()
    start = time.perf_counter()
    loader = DataLoader(test, args.batch_size)
    if encoding != "direct":
        loader = EncodedLoader(loader, encoding, frozen.T, seed=int(settings.get("seed", 0)))
    for x, y in loader:
        logits = frozen.run(x, count=True)
        correct += int((logits.mean(axis=0).argmax(axis=1) == y).sum())
        seen += len(y)
        totals += frozen.counts
    seconds = time.perf_counter() - start
    per = totals.per_sample(seen)
    print(f"frozen model       {args.model} (T={frozen.T})")
    print(f"data               {name} test split, {seen} samples, {seen / seconds:,.0f} samples/s")
    print(f"accuracy           {correct / seen:.4f}")
    print_payload(frozen)
    print(f"SOPs per sample    {per.sops:,.0f} (+ {per.macs:,.0f} MACs; SPEC E19)")
    print(f"NOPs per sample    {per.nop_mul + per.nop_add:,.0f} ({per.nop_mul:,.0f} MUL + {per.nop_add:,.0f} ADD)")
    print(f"energy per sample  {format_energy(energy(per))} (45 nm, SPEC E20); "
          f"{format_energy(energy(per, 'bitwidth'))} (bit-width table)")
    return 0
