"""``hdlif-ref ablation``: the paper's ablation at small scale; writes docs/results.md."""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, tiny data: a smoke run (~1 min)")
    parser.add_argument("--out", default=os.path.join("docs", "results.md"),
                        help="markdown file to write (default docs/results.md)")
    parser.add_argument("--datasets", default="digits,event-digits", help="comma-separated subset")


def run(args: argparse.Namespace) -> int:
    from ..training.ablation import DATASETS, QUICK, comparisons, paper_table, run_ablation, table

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise ValueError(f"--datasets {args.datasets!r}; allowed: {', '.join(DATASETS)}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # fail before the runs, not after
    if os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} is a directory; give the markdown file to write")
    start = time.perf_counter()
    results = run_ablation(quick=args.quick, datasets=names)
    minutes = (time.perf_counter() - start) / 60
    command = "hdlif-ref ablation" + (" --quick" if args.quick else "") + (
        f" --datasets {args.datasets}" if args.datasets != "digits,event-digits" else "")
    lines = [
        "# Results: the paper's ablation at small scale",
        "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()} "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()}), "
        f"{minutes:.1f} minutes in all.",
        "",
        "The paper's ablation is ResNet-18 on CIFAR-100, 300 epochs on a GPU. Ours is a small conv SNN",
        "(`digits_net`) on two embedded datasets, a few CPU-minutes per row, 3 seeds. Both datasets are",
        "made harder on purpose, because full digits puts every row near 98% and separates nothing:",
        "",
    ]
    for name in names:
        base = dict(DATASETS[name], **(QUICK if args.quick else {}))
        lines.append(f"- **{name}**: " + ", ".join(f"{k}={v}" for k, v in base.items()))
    lines += ["", "Rows 1 and 4 (LIF) use float32 synapses, as the paper's LIF row; all other rows ternary"
              " synapses (SPEC E12). Online rows draw K = 1 step per batch (SLTT-1). SOPs and NOPs are per test"
              " sample, measured on 256 test samples of the first seed's network.", ""]
    verdicts: dict[str, list[str]] = {}
    for name, rows in results.items():
        judged = comparisons(rows)
        lines += [f"## {name}", ""] + table(rows) + ["", "Against the paper's orderings:", ""]
        lines += [line for _, line, _ in judged] + [""]
        for claim, _, verdict in judged:
            verdicts.setdefault(claim, []).append(f"{name}: {verdict}")
    lines += ["## The paper's CIFAR-100 ablation (SPEC section 5)", ""] + paper_table() + [""]
    lines += ["## Summary: which orderings our small runs reproduce", "",
              "Criterion: two rows differ only when their means differ by more than the larger of their",
              "standard deviations over the seeds (3 seeds: a rough bar, stated rather than tuned).", ""]
    lines += [f"- {claim}: " + "; ".join(parts) for claim, parts in verdicts.items()] + [""]
    lines += [
        "Reading these numbers:",
        "",
        "- Scale. The paper trains ResNet-18 for 300 epochs on CIFAR-100; these rows train a",
        "  three-layer network for minutes. Differences of one or two points, like the paper's",
        "  costs of 4-bit spikes and Parallel neurons, are at or below the seed-to-seed spread",
        "  here, so 'same direction, within noise' is the most such a run can show.",
        "- Online K = 1 against STBP. SPEC E6' says each step's online gradient points where",
        "  STBP's does (at the neuron: online = chi x STBP). It does not say online K = 1 gets the",
        "  same amount of signal: it backpropagates 1 of T steps per batch. With T = 8 and equal",
        "  epochs that shows as a gap; the supplementary row backpropagates every step to separate",
        "  the two effects.",
        "- Mem-BN + SECA. Our SECA follows E14 with a documented initialization (docs/models.md);",
        "  at this scale it adds parameters and a gate to train in few epochs. A gain like the",
        "  paper's +0.3 to +1.8 points is within our noise either way.",
        "- Memory, SOPs, NOPs and energy follow the architecture as the paper's do: ternary",
        "  synapses cut memory (rows 2-8 against the float32 LIF rows), Parallel neurons cut NOPs",
        "  (1 ADD instead of 1 MUL + 2 ADD per neuron and step, E19), and quantized spikes change",
        "  SOPs only through how many spikes round to zero.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    from .._safe_files import atomic_write

    atomic_write(args.out, text, binary=False)
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
