"""Smoke run of the end-to-end benchmark (issues 9, 21): ``python -m benchmarks --quick`` and ``hdlif-ref bench``.

Tiny sizes, one timed call per side: every path runs (the PyTorch peer and its
float64 equality check when torch is installed, ours alone otherwise; the P1-P3
peers that are installed, the roofline, the scaling, the W3 breakdown, the
non-finite-check cost and the targets table), the table is printed and the JSON
file has the fields other tools read. No timing is asserted: numbers from a smoke
run mean nothing. Nothing tracked is written unless asked: the default output is a
new folder in the current directory.
"""
import ast
import json
import math
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import hdlif_ref
from benchmarks.__main__ import main as bench_main
from hdlif_ref.cli import main

RATIO_KEYS = {"W1", "W2_online_all", "W2_stbp", "W3", "W4_digits", "W4_resnet"}
MEMORY_KEYS = {"online_k1", "online_kT", "stbp"}
TARGET_NAMES = RATIO_KEYS | {f"P_{k}" for k in ("spikingjelly_bptt", "spikingjelly_sltt_k1", "snntorch_bptt",
                                                "snntorch_k1", "norse_bptt", "norse_k1")} | {
    "conv_W1", "conv_W3", "W3_roofline", "memory_online_k1", "nonfinite_checks"}
ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_writes_table_and_json_into_a_new_folder_here(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracked = [ROOT / "benchmarks" / "results" / "latest.json", ROOT / "docs" / "performance.md"]
    before = [p.read_bytes() for p in tracked]
    assert bench_main(["--quick", "--profile", "W1"]) == 0
    out = capsys.readouterr().out
    assert "| W1 |" in out and "| W4_resnet |" in out and "growth T=1 -> 2" in out
    folders = list(tmp_path.glob("bench-*"))
    assert len(folders) == 1 and [p.name for p in folders[0].iterdir()] == ["latest.json"]
    assert [p.read_bytes() for p in tracked] == before  # nothing the project ships was rewritten
    results = json.loads((folders[0] / "latest.json").read_text())
    assert set(results["ratios"]) == RATIO_KEYS
    assert set(results["memory_growth"]) == MEMORY_KEYS
    peaks = results["memory"]["ours"]
    for name in MEMORY_KEYS:  # growth is the last T's peak over the first's
        assert math.isclose(results["memory_growth"][name], peaks[name][-1] / peaks[name][0])
    if results["compared_with_torch"]:
        assert all(isinstance(r, float) and r > 0 for r in results["ratios"].values())
        assert all(c["grad_rel_diff"] <= 1e-9 for c in results["self_check"].values())
    else:
        assert all(r is None for r in results["ratios"].values())
    assert results["profile"]["workload"] == "W1" and results["profile"]["top"]
    _check_issue21_fields(results, out)


def _check_issue21_fields(results: dict, out: str) -> None:
    """The parts issue 21 added: present, consistent, and in the printed report."""
    assert results["settings"]["lr"] == 0.1 and results["settings"]["momentum"] == 0.9
    assert len(results["load_average_start"]) == 3 and len(results["load_average_end"]) == 3
    if results["compared_with_torch"]:
        for check in results["self_check"].values():
            assert check["steps"] >= 2 and max(check["param_rel_diff"], check["loss_rel_diff"]) <= 1e-9
            assert check["at_floor_ours"] == check["at_floor_torch"]  # the peer mirrors Parameter.lower
    # P1-P3: every installed peer has its rows at each thread count; the others are skipped with a note
    peers = results["peers"]
    assert set(peers["by_threads"]) == {"1", "2"}
    for lib, version in peers["versions"].items():
        assert (version is None) == (lib in peers["notes"])
    for entry in peers["by_threads"].values():
        assert set(entry["ms"]) == set(peers["rows"]) and {"ours_stbp", "ours_online_k1"} <= set(entry["ms"])
        for key, ratio in entry["other_over_ours"].items():
            assert math.isclose(ratio["ours_stbp"], entry["ms"][key]["median"] / entry["ms"]["ours_stbp"]["median"])
    assert "P1-P3" in out and "1 thread(s):" in out
    assert {"ours_stbp", "ours_online_k1"} <= set(peers["profiles"])  # the profiles that say why
    assert all(0 < len(p["top"]) <= 10 for p in peers["profiles"].values())
    # roofline: the W3 step and every conv shape against sgemm measured in the same run
    step = results["roofline"]["W3_step"]
    assert step["gflop"] > 0 and math.isclose(step["fraction"], step["gflops"] / step["sgemm_gflops"])
    if step["gflop_torch_counter"] is not None:  # our analytic count agrees with torch's flop counter
        assert math.isclose(step["gflop_torch_counter"], step["gflop_analytic"], rel_tol=1e-6)
    shapes = results["roofline"]["convs"]["shapes"]
    assert {"W1", "W3"} == {w for row in shapes for w in row["workloads"]}
    assert all(row["sgemm_gflops"] > 0 and row["fwd_bwd_gflops"] > 0 for row in shapes)
    # the fixed cost of a call against each shape's time budget at 70% of sgemm, and PyTorch's conv beside ours
    floor = results["roofline"]["convs"]["call_floor"]
    assert 0 < floor["fwd_bwd_analog_ms"] and 0 < floor["fwd_ms"] < floor["fwd_bwd_ms"]
    for row in shapes:
        budget_fwd_ms = row["gflop_fwd"] / (0.7 * row["sgemm_gflops"]) * 1e3
        assert math.isclose(row["floor_over_budget"]["fwd"], floor["fwd_ms"] / budget_fwd_ms, rel_tol=1e-9)
        passes, key = (2, "fwd_bwd_analog_ms") if row["analog"] else (3, "fwd_bwd_ms")
        assert math.isclose(row["floor_over_budget"]["fwd_bwd"], floor[key] / (passes * budget_fwd_ms), rel_tol=1e-9)
        if results["torch_available"]:
            assert math.isclose(row["torch_fwd_fraction"],
                                row["gflop_fwd"] / (row["torch_fwd_ms"] / 1e3) / row["sgemm_gflops"], rel_tol=1e-9)
            assert row["torch_fwd_bwd_ms"] > 0
        else:
            assert "torch_fwd_ms" not in row
    assert "call floor / budget" in out
    # T and batch scaling of W1 and W3
    sizes = results["settings"]["sizes"]
    for axis, values in (("T", sizes["scaling_T"]), ("batch", sizes["scaling_batch"])):
        for name in ("W1", "W3"):
            assert results["scaling"][axis][name]["values"] == values
            assert len(results["scaling"][axis][name]["points"]) == len(values)
    # the W3 breakdown: top 10 by own time, shares of the profiled time
    top = results["breakdown_W3"]["top"]
    assert 0 < len(top) <= 10 and all(0 <= r["share"] <= 1 for r in top)
    assert [r["own_ms_per_step"] for r in top] == sorted((r["own_ms_per_step"] for r in top), reverse=True)
    assert "Per-op time of ours on W3" in out
    assert {"checked_ms", "unchecked_ms", "cost", "holds"} <= set(results["checks"]) and "Non-finite" in out
    # the targets table: every issue-21 target once, holds a bool or None (not measured)
    names = [t["name"] for t in results["targets"]]
    assert sorted(names) == sorted(TARGET_NAMES)
    assert all(t["holds"] in (True, False, None) for t in results["targets"])
    assert "Targets (issue 21):" in out
    # where the two threads ran: a round trip before every round, when probed (2 threads and a C compiler)
    from benchmarks import _placement

    probed = results["threads"]["requested"] >= 2 and _placement.round_trip_ns() is not None
    for w in results["workloads"].values():
        if not probed:
            assert w["placement"] is None
            continue
        trips = w["placement"]["round_trip_ns"]
        assert len(trips) == w["ours"]["repeats"] and all(x is None or x > 0 for x in trips)
        assert w["placement"]["near"]["rounds"] + w["placement"]["far"]["rounds"] == sum(x is not None for x in trips)
    assert ("Two threads: near and far cores" in out) == probed


def test_bench_skip_and_peer_threads_options(tmp_path, capsys):
    """``--skip`` leaves parts out of the JSON (their targets then read None); ``--peer-threads`` picks the counts."""
    out_dir = tmp_path / "b"
    assert bench_main(["--quick", "--no-torch", "--profile", "none", "--out", str(out_dir), "--peer-threads", "1",
                       "--skip", "memory,roofline,scaling,breakdown,checks"]) == 0
    results = json.loads((out_dir / "latest.json").read_text())
    for part in ("memory", "roofline", "scaling", "breakdown_W3", "checks", "self_check", "profile"):
        assert part not in results
    assert set(results["peers"]["by_threads"]) == {"1"}
    by_name = {t["name"]: t for t in results["targets"]}
    assert by_name["conv_W1"]["holds"] is None and by_name["memory_online_k1"]["holds"] is None
    assert by_name["W1"]["holds"] is None  # not compared: --no-torch


def test_bench_rejects_bad_options(capsys):
    assert bench_main(["--repeats", "0"]) == 2
    assert "--repeats=0 must be >= 1" in capsys.readouterr().err
    assert bench_main(["--profile", "W9"]) == 2
    assert "--profile='W9'; allowed: W1" in capsys.readouterr().err
    assert bench_main(["--skip", "peers,gpu"]) == 2
    assert "--skip='peers,gpu': unknown part(s) gpu" in capsys.readouterr().err
    assert bench_main(["--peer-threads", "0"]) == 2
    assert "--peer-threads='0' must be thread counts >= 1" in capsys.readouterr().err


def test_hdlif_ref_bench_forwards_to_python_m_benchmarks(capfd):
    """In a subprocess: its options, help and exit codes are those of ``python -m benchmarks``."""
    assert main(["bench", "--repeats", "0"]) == 2
    assert "hdlif-ref bench: error: --repeats=0 must be >= 1" in capfd.readouterr().err
    assert main(["bench", "--help"]) == 0
    out = capfd.readouterr().out
    assert "usage: hdlif-ref bench" in out and "--out DIR" in out and "--update-docs" in out
    assert main(["bench", "--no-such-option"]) == 2


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_package_never_imports_benchmarks():
    sources = sorted(Path(hdlif_ref.__file__).parent.rglob("*.py"))
    offenders = [str(p) for p in sources if any(n.split(".")[0] == "benchmarks" for n in _imports(p))]
    assert not offenders, f"hdlif_ref modules importing benchmarks: {offenders}"
    # and at run time: importing every module of the package leaves benchmarks unloaded
    names = [m.name for m in pkgutil.walk_packages(hdlif_ref.__path__, "hdlif_ref.")]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]" and len(names) > 50


def test_peers_absent_are_skipped_with_a_note(monkeypatch):
    """A peer library that cannot be imported leaves only our rows; its targets read None with a note."""
    from benchmarks import peers

    monkeypatch.setattr(peers, "LIBRARIES", {name: f"no_such_module_{name}" for name in peers.LIBRARIES})
    result = peers.run(batch=4, T=2, threads=(1,), repeats=1, warmup=0, log=lambda text: None)
    assert set(result["versions"].values()) == {None} and set(result["notes"]) == set(peers.LIBRARIES)
    assert all("pip install -e .[peers]" in note for note in result["notes"].values())
    assert set(result["by_threads"]["1"]["ms"]) == {"ours_stbp", "ours_online_k1"}
    assert all(t["holds"] is None and t["note"] for t in peers.targets(result))


def test_interleaved_warms_up_for_its_minimum_time():
    """Warm-up rounds go on until WARMUP_SECONDS have passed (the machine wakes up); with 0, exactly ``warmup``."""
    import time

    from benchmarks import _timing

    calls = []

    def f():
        calls.append(1)
        time.sleep(0.01)

    with _timing.warmup_seconds(0.1):
        _timing.interleaved([f], repeats=2, warmup=1)
    assert len(calls) >= 2 + 0.1 / 0.011
    calls.clear()
    with _timing.warmup_seconds(0.0):
        _timing.interleaved([f], repeats=2, warmup=1)
    assert len(calls) == 3


def test_interleaved_calls_before_round_once_per_timed_round_and_keeps_round_order():
    from benchmarks import _timing

    events = []
    with _timing.warmup_seconds(0.0):
        a, b = _timing.interleaved([lambda: events.append("a"), lambda: events.append("b")], repeats=3, warmup=1,
                                   before_round=lambda: events.append("|"))
    assert events == ["a", "b", "|", "a", "b", "|", "b", "a", "|", "a", "b"]
    assert len(a.samples) == len(b.samples) == 3 and sorted(a.samples)[1] == a.median


def test_by_placement_takes_the_medians_of_each_kind_of_round():
    """Ratios over the near rounds and over the far ones, against NumPy medians of the same subsets."""
    import numpy as np

    from benchmarks import _placement
    from benchmarks._timing import _summary
    from benchmarks.bench_e2e import by_placement

    rng = np.random.default_rng(0)
    ours, theirs = rng.uniform(1, 2, 9), rng.uniform(1, 2, 9)
    trips = [60.0, 350.0, None, 199.9, _placement.FAR_NS, 400.0, 55.0, 1000.0, 80.0]
    near, far = [0, 3, 6, 8], [1, 4, 5, 7]  # index 2 was not measured: in neither
    got = by_placement(_summary(list(ours)), _summary(list(theirs)), trips, per_second=False)
    assert got["near"]["rounds"] == 4 and got["far"]["rounds"] == 4
    assert math.isclose(got["near"]["ratio"], np.median(ours[near]) / np.median(theirs[near]))
    assert math.isclose(got["far"]["ratio"], np.median(ours[far]) / np.median(theirs[far]))
    per_second = by_placement(_summary(list(ours)), _summary(list(theirs)), trips, per_second=True)
    assert math.isclose(per_second["far"]["ratio"], np.median(theirs[far]) / np.median(ours[far]))
    none = by_placement(_summary(list(ours)), None, [60.0] * 9, per_second=False)
    assert none == {"near": {"rounds": 9, "ratio": None}, "far": {"rounds": 0, "ratio": None}}
    assert _placement.placement(None) is None


def test_round_trip_probe_measures_or_says_none(monkeypatch):
    """A positive round trip where a C compiler and two CPUs exist; None without a compiler."""
    import shutil

    from benchmarks import _placement

    ns = _placement.round_trip_ns(rounds=1000)
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        if len(os.sched_getaffinity(0)) >= 2:
            assert ns is not None and 0 < ns < 1e7
    _placement._binary.cache_clear()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    try:
        assert _placement.round_trip_ns(rounds=10) is None
    finally:
        _placement._binary.cache_clear()


def test_round_trip_probe_that_cannot_run_says_none(monkeypatch):
    """A binary that cannot be executed (a temporary folder mounted noexec) or a compiler that fails to start:
    no placement, no exception."""
    import subprocess

    from benchmarks import _placement

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_placement, "_binary", lambda: "/nonexistent/round_trip")
    monkeypatch.setattr(subprocess, "run", refuse)
    assert _placement.round_trip_ns(rounds=10) is None
    monkeypatch.undo()
    _placement._binary.cache_clear()
    monkeypatch.setattr(subprocess, "run", refuse)
    try:
        assert _placement._binary() is None
    finally:
        _placement._binary.cache_clear()
