"""First run: the one-line compile notice (only on a real compile), and ``hdlif-ref warmup`` reaching every kernel."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from hdlif_ref.cli import main
from hdlif_ref.kernels._config import NOTICE

ROOT = Path(__file__).resolve().parents[2]
ONE_KERNEL = ("import numpy as np; from hdlif_ref.kernels.parallel import parallel_hdlif_forward as f; "
              "f(np.ones((1, 1, 4), np.float32), np.ones((1, 1), np.float32))")


def _run(code: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), HDLIF_REF_COMPILE_NOTICE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env,
                          cwd=str(ROOT))


def test_notice_once_while_compiling_and_never_from_a_warm_cache(tmp_path):
    cold = _run(ONE_KERNEL, tmp_path)
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.count(NOTICE) == 1 and cold.stderr.strip() == NOTICE  # one line, once
    warm = _run(ONE_KERNEL, tmp_path)  # the same Numba cache, now filled
    assert warm.returncode == 0 and warm.stderr == ""


def test_warmup_reaches_every_kernel(capsys):
    assert main(["warmup", "--quiet"]) == 0
    out = capsys.readouterr().out
    ready, total = map(int, re.search(r"warmup: (\d+) of (\d+) kernels ready", out).groups())
    assert ready == total >= 30 and "not exercised" not in out and re.search(r", [\d.]+ s$", out.strip())


def _caller():
    return _helper(1)


def _helper(x):
    return _inner(x)


def _inner(x):
    return x


def _orphan():
    return 0


def test_helpers_count_as_ready_through_their_callers():
    """A kernel never compiled on its own is ready when a compiled kernel calls it (transitively)."""
    from hdlif_ref._cli.warmup import unexercised

    kernels = [SimpleNamespace(signatures=["(float64,)"], py_func=_caller)] + [
        SimpleNamespace(signatures=[], py_func=f) for f in (_helper, _inner, _orphan)]
    assert [k.py_func for k in unexercised(kernels)] == [_orphan]
    assert [k.py_func for k in unexercised([SimpleNamespace(signatures=[], py_func=_caller), *kernels[1:]])] == [
        _caller, _helper, _inner, _orphan]
