"""``hdlif-ref eval CKPT``: accuracy, accuracy from the first t steps, firing rate per neuron layer."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by hdlif-ref train (.h5)")
    parser.add_argument("--data-dir", help="directory of the dataset files (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default 256)")


def evaluate_checkpoint(path: str, data_dir: str | None = None, batch_size: int = 256):
    from ..datasets import DataLoader
    from ..training.run import encoded, load_trained
    from ..training.trainer import OnlineTrainer

    config, data, model = load_trained(path, data_dir)
    loader = encoded(config, DataLoader(data.test, batch_size))  # the run's input encoding, as in training
    return config, OnlineTrainer(model, None, T=config["T"]).evaluate(loader)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size={args.batch_size} must be >= 1")
    config, result = evaluate_checkpoint(args.checkpoint, args.data_dir, args.batch_size)
    print(f"checkpoint     {args.checkpoint}")
    print(f"dataset        {config['dataset']} (test split, {result.samples} samples)")
    print(f"accuracy       {result.accuracy:.4f}")
    print(f"loss           {result.loss:.4f}")
    print("accuracy from the first t steps:")
    for t, acc in enumerate(result.accuracy_by_steps, start=1):
        print(f"  t = {t:<3d}     {acc:.4f}")
    print("firing rate per neuron layer (non-zero spikes / neuron-steps):")
    for name, rate in result.firing_rates.items():
        print(f"  {name:<32} {rate:.4f}")
    return 0
