"""``hdlif-ref --version`` and ``hdlif-ref info``; one-line errors with exit code 2."""
import subprocess
import sys

import h5py
import numba
import numpy
import scipy

from hdlif_ref import __version__
from hdlif_ref.cli import main


def test_info_prints_versions_threads_and_backend(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for module in (numpy, numba, scipy, h5py):
        assert f"{module.__name__:<13} {module.__version__}" in out
    assert f"numba threads {numba.get_num_threads()} (threading layer: {numba.threading_layer()})" in out
    assert "backend       numba" in out or "backend       numpy" in out


def test_version_through_the_installed_script():
    out = subprocess.run(["hdlif-ref", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hdlif-ref {__version__}"


def test_info_through_python_m_with_numpy_backend():
    import os
    env = dict(os.environ, HDLIF_REF_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-m", "hdlif_ref.cli", "info"], env=env,
                         capture_output=True, text=True, check=True)
    assert "backend       numpy" in out.stdout


def test_unknown_command_is_one_line_and_exit_code_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'frobnicate'" in err


def test_no_command_prints_help_and_exit_code_2(capsys):
    assert main([]) == 2
    assert "info" in capsys.readouterr().out
