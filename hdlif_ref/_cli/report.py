"""``hdlif-ref report``: parameter memory (E18), SOPs/MACs/NOPs (E19), energy (E20).

For a checkpoint (its trained network, SOPs on its test data) or for an
architecture (``--arch resnet18 --dataset cifar100 --T 4 ...``: a freshly built
network, SOPs from a random batch). ``--paper`` prints the paper's numbers
(SPEC section 5) beside ours.
"""
from __future__ import annotations

import argparse

import numpy as np

#: Input shape and classes of each dataset, for building an architecture without its files.
DATASET_SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "digits": ((1, 8, 8), 10),
                  "event-digits": ((2, 16, 16), 10), "mnist": ((1, 28, 28), 10), "fashion-mnist": ((1, 28, 28), 10),
                  "cifar10-dvs": ((2, 48, 48), 10)}
ARCHS = ("resnet18", "resnet19", "resnet34", "vgg_snn", "digits_net")

#: SPEC section 5 (ResNet-18, CIFAR stem, T = 4).
PAPER = {
    ("memory_fp32", "cifar10"): 44.66, ("memory_fp32", "cifar100"): 44.84,
    ("memory_ternary", "cifar10"): 2.82, ("memory_ternary", "cifar100"): 3.00,
    ("nops_vanilla", None): 6.59, ("nops_parallel", None): 4.62,
}
#: Why ours differs from the paper's, one line per row of ``--paper`` (docs/metrics.md, "Why the small differences").
PAPER_REASONS = {
    "memory_fp32": "a different count of BN affine or bias parameters explains 0.1%",
    "memory_ternary": "we count a float32 scale per output channel and the BN affine in float32 (~0.05 MB)",
    "nops_vanilla": "the paper counts ~8k fewer neurons a step: one 512x4x4 layer (the last before pooling?)",
    "nops_parallel": "same neuron count; our rule makes the first neuron of every block Parallel (44% of neurons)",
    "nop_reduction": "exactly 50% of the neurons Parallel would give -33%; the first of every block gives -30%",
}
PAPER_ABLATION = [  # CIFAR-100, ResNet-18, T = 4, 300 epochs on a GPU (SPEC section 5)
    ("LIF (E7)", 71.75), ("HD-LIF", 80.16), ("HD-LIF + 4-bit spikes", 79.62),
    ("HD-LIF + 50% Parallel", 78.82), ("HD-LIF + 4-bit + 50% Parallel", 78.61),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", metavar="CKPT", help="a checkpoint (or use --arch)")
    parser.add_argument("--arch", choices=ARCHS, help="report on a freshly built architecture")
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASET_SHAPES),
                        help="input shape and classes for --arch (default cifar10)")
    parser.add_argument("--T", type=int, default=4, help="time steps for --arch (default 4)")
    parser.add_argument("--neuron", default="hdlif", choices=("lif", "hdlif", "parallel", "membn"))
    parser.add_argument("--weight-mode", default="fp32", choices=("fp32", "binary", "ternary"))
    parser.add_argument("--spike-bits", type=int, default=None)
    parser.add_argument("--parallel-fraction", type=float, default=0.0)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=4, help="random samples for the SOP count (--arch)")
    parser.add_argument("--data-dir", help="dataset directory (checkpoint mode)")
    parser.add_argument("--paper", action="store_true", help="print the paper's numbers beside ours")
    parser.add_argument("--seed", type=int, default=0)


def build_arch(args: argparse.Namespace, **overrides):
    from ..models import digits_net, spiking_resnet, vgg_snn

    shape, classes = DATASET_SHAPES[args.dataset]
    options = dict(num_classes=classes, T=args.T, neuron=args.neuron, weight_mode=args.weight_mode,
                   spike_bits=args.spike_bits, parallel_fraction=args.parallel_fraction, width=args.width,
                   rng=np.random.default_rng(args.seed))
    options.update(overrides)
    if args.arch.startswith("resnet"):
        return spiking_resnet(int(args.arch[6:]), in_channels=shape[0], **options), shape
    if args.arch == "vgg_snn":
        return vgg_snn(in_channels=shape[0], input_size=shape[-1], **options), shape
    return digits_net(in_channels=shape[0], input_size=shape[-1], **options), shape


def measure(model, x) -> dict:
    from ..deploy.metrics import count_ops, energy, parameter_memory

    counts = count_ops(model, x, model.T)
    return {"memory_mb": parameter_memory(model)["megabytes"], "sops": counts.sops, "macs": counts.macs,
            "nops": counts.nops, "energy_mj": energy(counts) * 1e3, "energy_bitwidth_mj": energy(counts, "bitwidth") * 1e3}


def print_measures(title: str, m: dict) -> None:
    from ..deploy.counts import format_energy

    print(title)
    print(f"  parameter memory  {m['memory_mb']:.4f} MB (SPEC E18)")
    print(f"  SOPs / sample     {m['sops'] / 1e6:.3f} M   MACs {m['macs'] / 1e6:.3f} M (SPEC E19)")
    print(f"  NOPs / sample     {m['nops'] / 1e6:.3f} M (SPEC E19)")
    print(f"  energy / sample   {format_energy(m['energy_mj'] * 1e-3)} (45 nm), "
          f"{format_energy(m['energy_bitwidth_mj'] * 1e-3)} (bit-width table)")


def paper_table(args: argparse.Namespace) -> None:
    """Our numbers for the paper's configurations of this architecture, beside the paper's."""
    from ..deploy.metrics import count_nops, parameter_memory

    shape = DATASET_SHAPES[args.dataset][0]
    ours = {
        # the paper's network normalizes with one set of BN statistics for all steps: its memory
        # count is that of bn_stats="shared" (per-step statistics add 2 (T - 1) C numbers per BN)
        "memory_fp32": parameter_memory(build_arch(args, weight_mode="fp32", bn_stats="shared")[0])["megabytes"],
        "memory_ternary": parameter_memory(build_arch(args, weight_mode="ternary", bn_stats="shared")[0])["megabytes"],
        "nops_vanilla": count_nops(build_arch(args, parallel_fraction=0.0, neuron="hdlif")[0], shape, args.T).nops / 1e6,
        "nops_parallel": count_nops(build_arch(args, parallel_fraction=0.5, neuron="hdlif")[0], shape, args.T).nops / 1e6,
    }
    comparable = (args.arch == "resnet18" and args.dataset in ("cifar10", "cifar100") and args.T == 4
                  and args.width == 1.0)
    rows = [("float32 parameter memory (MB)", "memory_fp32", args.dataset),
            ("ternary synapses, first/last float32 (MB)", "memory_ternary", args.dataset),
            ("NOPs, all HD-LIF (M)", "nops_vanilla", None), ("NOPs, 50% Parallel (M)", "nops_parallel", None)]
    print(f"\n{'quantity':<44} {'paper':>8} {'ours':>8} {'ours/paper':>11}  why they differ (docs/metrics.md)")
    for label, key, dataset in rows:
        paper = PAPER.get((key, dataset)) if comparable else None
        ratio = f"{ours[key] / paper:.3f}" if paper else "-"
        why = f"  {PAPER_REASONS[key]}" if paper else ""
        print(f"{label:<44} {paper if paper else '-':>8} {ours[key]:>8.2f} {ratio:>11}{why}")
    reduction = 1 - ours["nops_parallel"] / ours["nops_vanilla"]
    why = f"  {PAPER_REASONS['nop_reduction']}" if comparable else ""
    print(f"{'NOP reduction':<44} {'-29.9%' if comparable else '-':>8} {-reduction:>8.1%} {'':>11}{why}")
    if not comparable:
        print("(the paper's numbers are for ResNet-18, width 1, CIFAR-10/100, T = 4; nothing to compare here)")
    print("\nPaper's CIFAR-100 ablation (ResNet-18, T = 4, 300 GPU epochs; accuracy %):")
    for label, acc in PAPER_ABLATION:
        print(f"  {label:<34} {acc:.2f}")
    print("  SECA + Mem-BN gain: +0.32 / +0.88 / +1.80 points; LIF row: 273.02 M SOPs x 0.9 pJ = 0.25 mJ")
    print("  (our small-scale ablation: hdlif-ref ablation, docs/results.md)")


def run(args: argparse.Namespace) -> int:
    if (args.checkpoint is None) == (args.arch is None):
        raise ValueError("report: give either a checkpoint or --arch (not both)")
    if args.checkpoint is not None:
        from ..training.run import deployment_report, load_trained

        config, data, model = load_trained(args.checkpoint, args.data_dir)
        r = deployment_report(model, data, encoding=config["encoding"], seed=config["seed"])
        print_measures(f"checkpoint {args.checkpoint} ({config['model']}, {config['neuron']}, "
                       f"{config['weight_mode']}, T={config['T']}); SOPs on 64 test samples",
                       {"memory_mb": r["parameter_memory_mb"], "sops": r["sops"], "macs": r["macs"],
                        "nops": r["nops"], "energy_mj": r["energy_mj"], "energy_bitwidth_mj": r["energy_bitwidth_mj"]})
        if args.paper:
            print("\n(--paper compares architectures: use --arch resnet18 --dataset cifar100 --T 4 --paper)")
        return 0
    if args.T < 1 or args.batch < 1:
        raise ValueError(f"--T={args.T} and --batch={args.batch} must be >= 1")
    model, shape = build_arch(args)
    x = np.random.default_rng(args.seed).random((args.batch,) + shape, dtype=np.float32)
    print_measures(f"{args.arch} for {args.dataset} (input {shape}, {args.neuron}, {args.weight_mode}, T={args.T}, "
                   f"parallel {args.parallel_fraction}); SOPs from {args.batch} random inputs, untrained weights",
                   measure(model, x))
    if args.paper:
        paper_table(args)
    return 0
