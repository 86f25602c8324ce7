"""The printed report of ``python -m benchmarks`` and its targets table (issue 21), from the results dict.

:func:`targets` turns the measured ratios into the issue-21 targets, each with
``holds`` (``None`` where the part was skipped or the peer is absent); :func:`table`
writes every part as markdown; :func:`update_docs` puts it between the markers of
``docs/performance.md`` that belong to the run's thread count.
"""
from __future__ import annotations

from pathlib import Path

from benchmarks._placement import FAR_NS
from hdlif_ref._safe_files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"


def doc_markers(threads: int) -> tuple[str, str]:
    """The markers of the block a run with ``threads`` threads rewrites (2: the main block)."""
    tag = "bench-e2e" if threads == 2 else f"bench-e2e-threads-{threads}"
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


# ----------------------------------------------------------------------------- targets
def _entry(name, what, value, op, limit, note=None, threads=None):
    holds = None if value is None else (value <= limit if op == "<=" else value >= limit)
    return {"name": name, "what": what, "value": value, "op": op, "limit": limit, "holds": holds,
            "threads": threads, "note": note}


def targets(results: dict) -> list[dict]:
    """Every issue-21 target with its measured value and holds/missed (``None``: not measured in this run)."""
    from benchmarks import bench_e2e, peers

    threads = results["threads"]["requested"]
    out = []
    off = None if threads == bench_e2e.TARGET_THREADS else \
        f"measured at {threads} thread(s); the target is set at {bench_e2e.TARGET_THREADS}"
    for name, w in results["workloads"].items():
        op, limit = bench_e2e.TARGETS[name]
        out.append(_entry(name, f"{w['what']}, ours / PyTorch eager" + (" images/s" if op == ">=" else " time"),
                          w["ratio"], op, limit, off if w["ratio"] is not None else "not compared (no torch)",
                          threads))
    if "peers" in results:
        for entry in peers.targets(results["peers"]):
            entry["threads"] = peers.TARGET_THREADS
            out.append(entry)
    roof = results.get("roofline")
    for net in ("W1", "W3"):
        agg = None if roof is None else roof["convs"]["by_workload"].get(net)
        value = None if agg is None else agg["worst_shape_fraction"]
        out.append(_entry(f"conv_{net}", f"conv kernels on the {net} shapes, GFLOP/s over one-thread sgemm "
                                         f"(worst shape, fwd or fwd+bwd, one thread)", value, ">=", 0.7,
                          None if roof is None else f"weighted by calls per step: {agg['fraction']:.2f}", 1))
    step = None if roof is None else roof["W3_step"]
    out.append(_entry("W3_roofline", "W3 step GFLOP/s over one-thread sgemm", None if step is None else
                      step["fraction"], ">=", 0.5, None, threads))
    growth = results.get("memory_growth")
    out.append(_entry("memory_online_k1", "online K=1 peak memory growth T = 1 -> 32 (W1's network)",
                      None if growth is None else growth["online_k1"], "<=", bench_e2e.ONLINE_K1_GROWTH_LIMIT,
                      None, threads))
    checks = results.get("checks")
    out.append(_entry("nonfinite_checks", "cost of the non-finite input checks on a W1 step (issue 17)",
                      None if checks is None else checks["cost"], "<", 0.02, None, threads))
    for e in out:  # the checks target is strict
        if e["op"] == "<" and e["value"] is not None:
            e["holds"] = e["value"] < e["limit"]
    return out


# ----------------------------------------------------------------------------- markdown
def _cell(t: dict | None, unit: str, torch_missing: bool) -> str:
    if t is None:
        return "torch not installed" if torch_missing else "-"
    fmt = "{:.1f}" if unit == "ms" else "{:.0f}"
    return f"{fmt.format(t['median'])} [{fmt.format(t['min'])}, {fmt.format(t['max'])}] {unit}"


def _mb(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.2f}"


def _f(x, fmt="{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _yes(h) -> str:
    return "-" if h is None else ("holds" if h else "**missed**")


def _header(results: dict) -> list[str]:
    from benchmarks.e2e_threads import blas_summary

    s, th, v = results["settings"]["sizes"], results["threads"], results["versions"]
    load = lambda key: "-" if results.get(key) is None else ", ".join(str(x) for x in results[key])
    return [f"{results['date']}; {results['machine']}; torch {v['torch']}, Numba {v['numba']}; threads: torch "
            f"{th.get('torch_intra_op', '-')}, ours {th['numba']} ({th.get('ours_set_by', 'numba')}), BLAS "
            f"{blas_summary(th)}; load average (1, 5, 15 min) {load('load_average_start')} at start, "
            f"{load('load_average_end')} at end. Median of {results['settings']['repeats']} alternating calls after "
            f"{results['settings']['warmup']} warm-up rounds"
            f"{_warmup_time(results['settings'].get('warmup_seconds'))}, [min, max]. "
            f"Batch {s['digits_batch']} (digits), "
            f"{s['resnet_batch']} (ResNet-18, width {s['resnet_width']}, {s['resnet_input']}x{s['resnet_input']}x3), "
            f"T = {s['T']}, ternary synapses, 4-bit spikes; both sides train with SGD(lr = {results['settings']['lr']}"
            f", momentum = {results['settings']['momentum']})."]


def _workloads(results: dict) -> list[str]:
    lines = ["", "| workload | what | ours | PyTorch | ours / PyTorch | target | holds |", "|---|---|---|---|---|---|---|"]
    missing = not results["torch_available"]
    for name, w in results["workloads"].items():
        lines.append(f"| {name} | {w['what']} | {_cell(w['ours'], w['unit'], missing)} | "
                     f"{_cell(w['torch'], w['unit'], missing)} | {_f(w['ratio'])} | {w['target']} | "
                     f"{_yes(w['holds'])} |")
    lines += _placements(results)
    if "self_check" in results:
        c = results["self_check"]
        worst = {k: max(v[k] for v in c.values()) for k in ("loss_rel_diff", "grad_rel_diff", "param_rel_diff")}
        floors = ", ".join(f"{k} {v['at_floor_ours']}/{v['at_floor_torch']}" for k, v in c.items())
        steps = next(iter(c.values()))["steps"]
        lines += ["", f"Self-check before timing: {steps} float64 SGD steps of each training workload on both "
                      f"sides from the same weights; largest relative difference: loss {worst['loss_rel_diff']:.1e}, "
                      f"gradients {worst['grad_rel_diff']:.1e}, parameters after an update "
                      f"{worst['param_rel_diff']:.1e}. Values on their floor (`Parameter.lower`) after the steps, "
                      f"ours/PyTorch: {floors}."]
    return lines


def _placements(results: dict) -> list[str]:
    """Near or far cores, round by round (:mod:`benchmarks._placement`); nothing where not probed."""
    placed = {name: w["placement"] for name, w in results["workloads"].items() if w.get("placement")}
    if not placed:
        return []
    ns = lambda x: "-" if x is None else f"{x:.0f}"
    trips = lambda p: [x for x in p["round_trip_ns"] if x is not None]
    span = lambda p: f"{ns(min(trips(p)))}-{ns(max(trips(p)))}" if trips(p) else "-"
    lines = ["", "Where the host put the two CPUs (docs/performance.md, \"Two threads: near and far cores\"): the "
                 "cache-line round trip between them, measured before every round, "
                 f"{ns(results.get('round_trip_ns_start'))} ns at the start of the run and "
                 f"{ns(results.get('round_trip_ns_end'))} ns at its end; rounds at >= {FAR_NS:.0f} ns are \"far\". "
                 "Each ratio below is taken over only the rounds of one kind (the verdict above is over all).", "",
             "| workload | round trip (ns) | near rounds | ratio, near | far rounds | ratio, far |",
             "|---|---|---|---|---|---|"]
    for name, p in placed.items():
        lines.append(f"| {name} | {span(p)} | {p['near']['rounds']} | {_f(p['near']['ratio'])} | "
                     f"{p['far']['rounds']} | {_f(p['far']['ratio'])} |")
    return lines


def _memory(results: dict) -> list[str]:
    from benchmarks.bench_e2e import MEMORY_ALGORITHMS, ONLINE_K1_GROWTH_LIMIT

    mem = results.get("memory")
    if mem is None:
        return []
    lines = ["", "Peak memory of one training step (MiB) versus T, W1's network (W5):", "",
             "| T | ours online K=1 | ours online K=T | ours STBP | PyTorch online K=1 | PyTorch online K=T "
             "| PyTorch STBP |", "|---|---|---|---|---|---|---|"]
    for i, T in enumerate(mem["T"]):
        theirs = [None] * 3 if mem["torch"] is None else [mem["torch"][a][i] for a in MEMORY_ALGORITHMS]
        lines.append(f"| {T} | " + " | ".join(_mb(mem["ours"][a][i]) for a in MEMORY_ALGORITHMS) + " | "
                     + " | ".join(_mb(b) for b in theirs) + " |")
    growth = lambda g: " | ".join("-" if g is None else f"{g[a]:.2f}x" for a in MEMORY_ALGORITHMS)
    lines.append(f"| growth T={mem['T'][0]} -> {mem['T'][-1]} | {growth(mem['growth'])} | "
                 f"{growth(mem['growth_torch'])} |")
    holds = results["memory_targets"]["online_k1"]["holds"]
    lines += ["", f"Target: online K = 1 grows <= {ONLINE_K1_GROWTH_LIMIT}x: {_yes(holds)}; STBP grows "
                  f"roughly linearly (reported)."]
    return lines


def _peers(results: dict) -> list[str]:
    p = results.get("peers")
    if p is None:
        return []
    versions = ", ".join(f"{k} {v}" if v else f"{k}: skipped ({p['notes'][k]})" for k, v in p["versions"].items())
    lines = ["", f"P1-P3, the digits LIF network (16C3-BN-LIF, 32C3, AP2, 64C3, AP2, FC; batch {p['batch']}, "
                 f"T = {p['T']}, {p['dtype']}, SGD lr {p['lr']} momentum {p['momentum']}), every row in the same "
                 f"interleaved rounds; other / ours time (higher: we are faster). Peers: {versions}."]
    for n, entry in p["by_threads"].items():
        lines += ["", f"{n} thread(s):", "", "| row | ms [min, max] | / our LIF STBP | / our LIF online K=1 |",
                  "|---|---|---|---|"]
        for key, what in p["rows"].items():
            t = entry["ms"][key]
            ratio = entry["other_over_ours"].get(key)
            lines.append(f"| {what} | {t['median']:.1f} [{t['min']:.1f}, {t['max']:.1f}] | "
                         f"{_f(None if ratio is None else ratio['ours_stbp'], '{:.2f}')} | "
                         f"{_f(None if ratio is None else ratio['ours_online_k1'], '{:.2f}')} |")
    for key, prof in p.get("profiles", {}).items():
        tool = "cProfile" if key.startswith("ours") else "torch.profiler, self CPU time"
        lines += ["", f"Profile of {p['rows'].get(key, key)}, one thread ({tool}, per step, top 10 by own time; "
                      f"{prof['total_ms_per_step']:.1f} ms profiled per step):", ""]
        lines += _profile_rows(prof["top"], share=True)
    return lines


def _every_block(step: dict) -> str:
    return "" if step.get("silent_blocks_skipped", True) else " with every block computed (no silent-block skip)"


def _warmup_time(seconds) -> str:
    return f" (and at least {seconds:g} s of them)" if seconds else ""


def _roofline(results: dict) -> list[str]:
    r = results.get("roofline")
    if r is None:
        return []
    s = r["W3_step"]
    lines = ["", f"Roofline: the W3 step counts {s['gflop']:.2f} GFLOP ({s['flop_source']}; analytic from the "
                 f"layer shapes {s['gflop_analytic']:.2f}) and ran in {s['step_ms']:.1f} ms"
                 f"{_every_block(s)}"
                 f": {s['gflops']:.1f} "
                 f"GFLOP/s, **{s['fraction']:.2f}** of one-thread sgemm ({s['sgemm_gflops']:.1f} GFLOP/s, "
                 f"[{r['convs']['sgemm_n']}]^2 float32, same rounds); target >= {s['target_fraction']}: "
                 f"{_yes(s['holds'])}.", "",
             "Convolution shapes of W1 and W3, one thread, ours against one-thread sgemm in the same rounds "
             "(fwd+bwd = dx and dW too: 3x the forward's FLOPs; the analog first layers dW only, 2x, as in "
             "training):", "",
             "| workloads | x | w | stride | calls/step | fwd GFLOP/s | fwd+bwd GFLOP/s | sgemm GFLOP/s "
             "| fwd / sgemm | fwd+bwd / sgemm | >= 0.7 | PyTorch fwd; fwd+bwd / sgemm | call floor / budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["convs"]["shapes"]:
        calls = ", ".join(f"{k} {v}" for k, v in row["calls_per_step"].items())
        theirs = (f"{row['torch_fwd_fraction']:.2f}; {row['torch_fwd_bwd_fraction']:.2f}"
                  if "torch_fwd_fraction" in row else "-")
        over = row.get("floor_over_budget")
        floor = f"{over['fwd']:.2f}; {over['fwd_bwd']:.2f}" if over else "-"
        lines.append(f"| {', '.join(row['workloads'])} | {row['x']} | {row['w']} | {row['stride'][0]} | {calls} | "
                     f"{row['fwd_gflops']:.1f} | {row['fwd_bwd_gflops']:.1f} | {row['sgemm_gflops']:.1f} | "
                     f"{row['fwd_fraction']:.2f} | {row['fwd_bwd_fraction']:.2f} | {_yes(row['holds'])} | "
                     f"{theirs} | {floor} |")
    floor = r["convs"].get("call_floor")
    if floor:
        lines += ["", f"PyTorch: `torch.nn.functional.conv2d` (oneDNN) on one thread, the same shapes in the same "
                      f"rounds, over the same sgemm. Call floor: `ops.conv2d` on a [1, 1, 1, 1] input and weight, "
                      f"{floor['fwd_ms'] * 1e3:.0f} us forward, {floor['fwd_bwd_ms'] * 1e3:.0f} us forward + backward "
                      f"({floor['fwd_bwd_analog_ms'] * 1e3:.0f} us with `dW` only, the analog rows); "
                      f"over the shape's time at 70% of sgemm (its budget), a value above 1 means the target "
                      f"is out of reach through this API whatever the kernel."]
    for net, agg in r["convs"]["by_workload"].items():
        lines.append(f"\n{net}'s convolutions together (weighted by calls per step), fwd+bwd: "
                     f"{_f(agg['fwd_bwd_gflops'], '{:.1f}')} GFLOP/s, {_f(agg['fraction'], '{:.2f}')} of sgemm.")
    return lines


def _scaling(results: dict) -> list[str]:
    sc = results.get("scaling")
    if sc is None:
        return []
    lines = []
    for axis, label in (("T", "T"), ("batch", "batch")):
        fixed = f"batch {sc['fixed']['batch']['W1']} (W1), {sc['fixed']['batch']['W3']} (W3)" if axis == "T" \
            else f"T = {sc['fixed']['T']}"
        lines += ["", f"{label} scaling of W1 and W3 (online K=1 step; {fixed}; median of {sc['repeats']}):", "",
                  f"| {label} | W1 ours ms | W1 PyTorch ms | W1 ratio | W3 ours ms | W3 PyTorch ms | W3 ratio |",
                  "|---|---|---|---|---|---|---|"]
        for i, value in enumerate(sc[axis]["W1"]["values"]):
            cells = []
            for name in ("W1", "W3"):
                pt = sc[axis][name]["points"][i]
                cells += [_f(pt["ours_ms"], "{:.1f}"), _f(pt["torch_ms"], "{:.1f}"), _f(pt["ratio"], "{:.2f}")]
            lines.append(f"| {value} | " + " | ".join(cells) + " |")
    return lines


def _profile_rows(top: list[dict], share: bool) -> list[str]:
    if share:
        head = ["| function | calls | own ms | share | cumulative ms |", "|---|---|---|---|---|"]
        return head + [f"| `{r['function']}` | {r['calls']:.0f} | {r['own_ms_per_step']:.2f} | "
                       f"{100 * r['share']:.1f}% | {r['cumulative_ms_per_step']:.2f} |" for r in top]
    head = ["| function | calls | own ms | cumulative ms |", "|---|---|---|---|"]
    return head + [f"| `{r['function']}` | {r['calls']:.0f} | {r['own_ms_per_step']:.2f} | "
                   f"{r['cumulative_ms_per_step']:.2f} |" for r in top]


def _breakdown(results: dict) -> list[str]:
    b = results.get("breakdown_W3")
    if b is None:
        return []
    return ["", f"Per-op time of ours on W3 (cProfile, per step, top 10 by own time; {b['total_ms_per_step']:.1f} ms "
                f"profiled per step):", ""] + _profile_rows(b["top"], share=True)


def _checks(results: dict) -> list[str]:
    c = results.get("checks")
    if c is None:
        return []
    return ["", f"Non-finite input checks (issue 17): W1 step {c['checked_ms']:.2f} ms with them, "
                f"{c['unchecked_ms']:.2f} ms without: cost {100 * c['cost']:+.2f}% (target < "
                f"{100 * c['target']:.0f}%: {_yes(c['holds'])})."]


def _targets(results: dict) -> list[str]:
    lines = ["", "Targets (issue 21):", "", "| target | what | value | limit | threads | result | note |",
             "|---|---|---|---|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['name']} | {t['what']} | {_f(t['value'])} | {t['op']} {t['limit']} | "
                     f"{t['threads'] if t['threads'] is not None else '-'} | {_yes(t['holds'])} | {t['note'] or ''} |")
    return lines


def table(results: dict) -> str:
    """Every part as markdown: workloads, memory, peers, roofline, scaling, breakdown, checks, targets, profile."""
    lines = (_header(results) + _workloads(results) + _memory(results) + _peers(results) + _roofline(results)
             + _scaling(results) + _breakdown(results) + _checks(results) + _targets(results))
    if "profile" in results:
        p = results["profile"]
        lines += ["", f"Profile of ours on {p['workload']} (cProfile, per step, top by own time):", ""]
        lines += _profile_rows(p["top"], share=False)
    return "\n".join(lines)


def update_docs(text: str, threads: int, path: Path = DOCS) -> bool:
    """Replace the block between the run's markers in ``docs/performance.md``; False if they are missing."""
    begin_mark, end_mark = doc_markers(threads)
    doc = path.read_text()
    begin, end = doc.find(begin_mark), doc.find(end_mark)
    if begin < 0 or end < begin:
        return False
    atomic_write(path, doc[:begin + len(begin_mark)] + "\n" + text + "\n" + doc[end:], binary=False)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.e2e_report RESULTS.json [--update-docs]``: the report of a saved run, again."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e_report", description=main.__doc__)
    parser.add_argument("json", help="a latest.json written by python -m benchmarks")
    parser.add_argument("--update-docs", action="store_true", help="rewrite the run's block in docs/performance.md")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.json).read_text())
    text = table(results)
    print(text)
    if args.update_docs and not update_docs(text, results["threads"]["requested"]):
        print(f"# {DOCS}: markers {doc_markers(results['threads']['requested'])} not found; not updated")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
