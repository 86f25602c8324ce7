"""Shared test settings: hypothesis without deadlines (Numba compiles on first call); no first-run notice."""
import os

# The one-line "compiling Numba kernels" notice would land in whichever test compiles first and
# break its stderr checks on a cold cache; tests/cli/test_warmup.py checks the notice in a subprocess.
os.environ.setdefault("HDLIF_REF_COMPILE_NOTICE", "0")
# Before torch is imported (the crosscheck tests import it at collection): with OpenMP's default
# active waiting, torch's idle pool spins against Numba's on 2 cores and every parallel kernel of a
# later test runs several times slower (measured: writing the golden file 5 s -> 18-21 s). The package
# sets the same policy when its kernels load (hdlif_ref/kernels/_config.py), which is too late once
# torch's OpenMP runtime has started.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
