"""T scaling and batch scaling of W1 and W3 (issue 21): ours and the PyTorch peer, ratio ours / PyTorch.

For each ``T`` in ``sizes.scaling_T`` (batch as the workload's) and each batch in
``sizes.scaling_batch`` (``T`` as the workload's), one online ``K = 1`` training step
of W1's and W3's network on both sides, interleaved (``bench_e2e.alternate``'s rule:
the order flips every round), medians.
"""
from __future__ import annotations

from benchmarks import e2e_workloads as wl
from benchmarks._timing import interleaved

WORKLOADS = (("W1", "digits"), ("W3", "resnet"))


def _point(net: str, sizes: wl.Sizes, with_torch: bool, repeats: int, warmup: int, T=None, n=None) -> dict:
    ours, theirs = wl.training_pair(net, "online_k1", sizes, with_torch, T=T, n=n)
    timings = interleaved([ours] + ([theirs] if theirs is not None else []), repeats=repeats, warmup=warmup)
    ours_ms = timings[0].median * 1e3
    torch_ms = timings[1].median * 1e3 if theirs is not None else None
    return {"ours_ms": ours_ms, "torch_ms": torch_ms, "ratio": None if torch_ms is None else ours_ms / torch_ms}


def run(sizes: wl.Sizes, with_torch: bool, repeats: int, warmup: int, log=print) -> dict:
    """``{"T": {...}, "batch": {...}}``: per workload, the values and one point per value."""
    result = {"T": {}, "batch": {}, "repeats": repeats,
              "fixed": {"T": sizes.T, "batch": {"W1": sizes.digits_batch, "W3": sizes.resnet_batch}}}
    for name, net in WORKLOADS:
        log(f"# scaling: {name} over T = {list(sizes.scaling_T)} and batch = {list(sizes.scaling_batch)} ...")
        result["T"][name] = {"values": list(sizes.scaling_T),
                             "points": [_point(net, sizes, with_torch, repeats, warmup, T=T)
                                        for T in sizes.scaling_T]}
        result["batch"][name] = {"values": list(sizes.scaling_batch),
                                 "points": [_point(net, sizes, with_torch, repeats, warmup, n=n)
                                            for n in sizes.scaling_batch]}
    return result
