"""Numba settings shared by every kernel (DESIGN.md "Kernel / API split"), and the thread policy.

An oracle must be reproducible, so ``fastmath`` is off everywhere: no reassociation,
no flush-to-zero, the same float sums as the NumPy twins up to the order of
accumulation. ``cache=True`` stores compiled machine code next to the sources, so
only the first run on a machine pays the compile time, and the first run after a change to
any kernel source ("cache freshness" below: Numba alone tracks only the defining file).

``parallel=True`` is used only where each ``prange`` iteration writes its own
slice of the output (no shared accumulators), which keeps results independent of
the thread count.

Thread policy (docs/performance.md, "Thread policy"): Numba's OpenMP workers and
OpenBLAS's workers share the cores. An OpenMP worker that has finished a parallel
loop spins, by default, for a while before sleeping, without yielding; a BLAS
call that starts meanwhile finds a core taken and runs several times slower (we
measured 3-10x on 2 cores). Importing this module therefore sets
``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP workers sleep at once) unless the user
has set it; it must happen before Numba starts its OpenMP pool, which is the
first parallel kernel call. OpenBLAS keeps its default thread count (this
library never changes NumPy's BLAS threads). :func:`_threads.threading_info`
reports whether the policy took effect.

Every kernel made by :func:`njit` / :func:`njit_parallel` is listed in :data:`KERNELS`
(what ``hdlif-ref warmup`` checks). The first time one of them really compiles in a
process (a cache miss: first run on a machine, new argument types, changed sources),
one line goes to stderr (:data:`NOTICE`); loading from the cache prints nothing.
"""
from __future__ import annotations

import hashlib
import os
import sys

import numba
import numba.core.dispatcher
import numba.core.event

#: Environment the thread policy sets (with ``setdefault``: a user's own value wins).
THREAD_POLICY_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _openmp_already_loaded() -> bool:
    """True if a GNU OpenMP runtime is already mapped into this process (Linux; False elsewhere).

    Numba's OpenMP pool then uses that copy (the dynamic loader finds a loaded library by its
    soname, ``libgomp.so.1``), which read ``OMP_WAIT_POLICY`` when it loaded: e.g. torch's, when
    torch is imported first (docs/performance.md, "Thread policy").
    """
    try:
        with open("/proc/self/maps") as fh:
            return any("libgomp" in line for line in fh)
    except OSError:
        return False


def _apply_thread_policy() -> bool:
    """Set the policy's environment; return False if it is too late for it to apply: Numba's pool
    already started, or an OpenMP runtime that Numba would share was loaded before this module set
    the variables (a value already in the environment is taken to have been there at start-up)."""
    from numba.np.ufunc import parallel

    global WAIT_POLICY_BEFORE
    WAIT_POLICY_BEFORE = os.environ.get("OMP_WAIT_POLICY")
    preset = all(os.environ.get(name) is not None for name in THREAD_POLICY_ENV)
    for name, value in THREAD_POLICY_ENV.items():
        os.environ.setdefault(name, value)
    return not getattr(parallel, "_is_initialized", False) and (preset or not _openmp_already_loaded())


#: OMP_WAIT_POLICY as the environment had it before this module set its default (None: unset).
WAIT_POLICY_BEFORE: str | None = None
#: False if Numba's thread pool was running, or an OpenMP runtime was loaded, before this module was imported.
POLICY_IN_TIME = _apply_thread_policy()

#: Options for serial kernels.
JIT_OPTIONS = dict(cache=True, fastmath=False, nogil=True, error_model="numpy")

#: Options for kernels whose outer loop is a ``prange`` over disjoint output slices.
PARALLEL_JIT_OPTIONS = dict(JIT_OPTIONS, parallel=True)


#: Every kernel compiled through :func:`njit` / :func:`njit_parallel`, in import order (what ``warmup`` checks).
KERNELS: list = []


def _registered(result):
    if isinstance(result, numba.core.dispatcher.Dispatcher):
        KERNELS.append(result)
        return result

    def decorate(fn):  # njit(**options) used as a decorator factory
        return _registered(result(fn))
    return decorate


def njit(*args, **overrides):
    """``numba.njit`` with the project's settings (``cache=True``, ``fastmath=False``)."""
    options = dict(JIT_OPTIONS, **overrides)
    return _registered(numba.njit(*args, **options))


def njit_parallel(*args, **overrides):
    """``numba.njit(parallel=True)`` with the project's settings."""
    options = dict(PARALLEL_JIT_OPTIONS, **overrides)
    return _registered(numba.njit(*args, **options))


# ---------------------------------------------------------------------------- cache freshness
# Numba stamps a cached kernel with a hash of the file that defines it, and of no other: a kernel that calls a
# helper (``_blocking.lane_sum``, the ``_simd`` intrinsics) or reads a constant (``BLOCK``) from another file keeps
# its old machine code after that file changes, silently (numba/numba#8396, not merged). So every kernel's stamp
# here also holds a digest of all the kernel sources of its directory: any change to any of them recompiles them all
# (once; the digest is computed when this module is imported).
def sources_digest(directory: str) -> str:
    """SHA-256 over the names and contents of the regular ``*.py`` files directly in ``directory``, in name order
    (no dot-files: an editor's lock file such as ``.#lif.py`` is a dangling link)."""
    digest = hashlib.sha256()
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".py") and not e.name.startswith(".") and e.is_file())
    for name in names:
        with open(os.path.join(directory, name), "rb") as fh:
            content = fh.read()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def _real_dir(path: str) -> str:
    """The directory of ``path`` with its links resolved (not the file's own: a linked-in file still counts where it
    is listed)."""
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def tracking_locators(directory: str) -> list:
    """Numba cache locators for the functions defined in the ``*.py`` files directly in ``directory``, whose
    source stamp is ``(Numba's stamp of the file, sources_digest(directory))``; they decline any other file."""
    from numba.core import caching

    directory = os.path.realpath(directory)
    digest = sources_digest(directory)

    def tracked(base):
        class Locator(base):
            tracked_directory = directory

            def get_source_stamp(self):
                return super().get_source_stamp(), digest

            @classmethod
            def from_function(cls, py_func, py_file):
                if _real_dir(py_file) != directory:
                    return None
                return super().from_function(py_func, py_file)

        Locator.__name__ = Locator.__qualname__ = f"SourcesTracking{base.__name__}"
        return Locator

    return [tracked(base) for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                                       caching.UserWideCacheLocator)]


def track_sources(directory: str) -> bool:
    """Put :func:`tracking_locators` for ``directory`` first in Numba's list of cache locators (before any function
    of that directory is compiled), in place of any that an earlier call put there for it. False, changing nothing,
    where it cannot take effect: this Numba lacks the locators or the list, the user chose the locators
    (``NUMBA_CACHE_LOCATOR_CLASSES``: Numba then ignores the list), or ``directory`` cannot be read (a zip import)."""
    try:
        from numba.core.caching import CacheImpl
        if getattr(numba.config, "CACHE_LOCATOR_CLASSES", None):
            return False
        locators = tracking_locators(directory)
        kept = [c for c in CacheImpl._locator_classes
                if getattr(c, "tracked_directory", None) != locators[0].tracked_directory]
        CacheImpl._locator_classes = locators + kept
    except (ImportError, AttributeError, OSError):
        return False
    return True


#: Whether a change to any kernel source recompiles every kernel (above); False where :func:`track_sources` says.
CACHE_TRACKS_ALL_SOURCES = track_sources(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------- first-run notice
#: ``HDLIF_REF_COMPILE_NOTICE=0`` silences the notice (the test suite does).
NOTICE_ENV = "HDLIF_REF_COMPILE_NOTICE"
NOTICE = ("hdlif-ref: compiling Numba kernels (first run on this machine or after an update; a training run "
          "waits about a minute, later runs load them from the cache; `hdlif-ref warmup` compiles all ahead)")


class _CompileNotice(numba.core.event.Listener):
    """Prints :data:`NOTICE` once per process, when the first of our kernels really compiles.

    Numba fires ``numba:compile`` only after a cache miss (a kernel loaded from the cache
    fires nothing), so a warm cache costs nothing and prints nothing.
    """

    def __init__(self) -> None:
        self.shown = False

    def on_start(self, event) -> None:
        if self.shown or os.environ.get(NOTICE_ENV, "1") == "0":
            return
        dispatcher = (event.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.startswith("hdlif_ref."):
            self.shown = True
            print(NOTICE, file=sys.stderr, flush=True)

    def on_end(self, event) -> None:
        pass


COMPILE_NOTICE = _CompileNotice()
numba.core.event.register("numba:compile", COMPILE_NOTICE)
