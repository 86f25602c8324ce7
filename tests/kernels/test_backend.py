"""The kernel backend switch (DESIGN.md "Two backends")."""
import os
import subprocess
import sys

import pytest

import hdlif_ref
from hdlif_ref.kernels import BACKENDS, dispatch, get_backend, set_backend


def test_context_manager_switches_and_restores():
    start = get_backend()
    with hdlif_ref.backend("numpy") as name:
        assert name == "numpy" and get_backend() == "numpy"
        with hdlif_ref.backend("numba"):
            assert get_backend() == "numba"
        assert get_backend() == "numpy"
    assert get_backend() == start


def test_context_manager_restores_after_an_exception():
    start = get_backend()
    with pytest.raises(KeyError):
        with hdlif_ref.backend("numpy"):
            raise KeyError("boom")
    assert get_backend() == start


def test_dispatch_calls_the_active_implementation():
    kernel = dispatch(lambda x: ("numba", x), lambda x: ("numpy", x))
    with hdlif_ref.backend("numba"):
        assert kernel(1) == ("numba", 1)
    with hdlif_ref.backend("numpy"):
        assert kernel(2) == ("numpy", 2)


def test_unknown_backend_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"backend='cuda' is not a kernel backend; allowed: numba, numpy"):
        set_backend("cuda")
    assert BACKENDS == ("numba", "numpy")


@pytest.mark.parametrize("value, expected", [("numpy", "numpy"), ("NUMBA", "numba")])
def test_environment_variable_sets_the_default(value, expected):
    env = dict(os.environ, HDLIF_REF_BACKEND=value)
    out = subprocess.run([sys.executable, "-c", "import hdlif_ref; print(hdlif_ref.get_backend())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_bad_environment_variable_fails_at_import_with_a_clear_message():
    env = dict(os.environ, HDLIF_REF_BACKEND="gpu")
    out = subprocess.run([sys.executable, "-c", "import hdlif_ref"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "HDLIF_REF_BACKEND='gpu' is not a kernel backend; allowed: numba, numpy" in out.stderr
