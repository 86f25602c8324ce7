"""A cached kernel is recompiled when any kernel source of its directory changes, not only its own file
(``kernels/_config.py``, "cache freshness"): Numba alone keeps the old machine code of a kernel whose helper in
another file changed."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys

from numba.core.caching import CacheImpl

from hdlif_ref.kernels import _config, finite

KERNEL = """import numba
from pkg.helper import g


@numba.njit(cache=True)
def f():
    return g()
"""
HELPER = """import numba


@numba.njit
def g():
    return {value}
"""


def _run(root, tracked: bool) -> tuple[int, int, int]:
    """``(f(), cache hits, cache misses)`` of ``pkg.kern.f`` in a fresh process, with or without the tracking."""
    code = (f"import sys; sys.path.insert(0, {str(root)!r})\n"
            "from hdlif_ref.kernels import _config\n"
            + (f"assert _config.track_sources({str(root / 'pkg')!r})\n" if tracked else "")
            + "from pkg import kern\n"
            "value = kern.f()\n"
            "print(value, sum(kern.f.stats.cache_hits.values()), sum(kern.f.stats.cache_misses.values()))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(root / "cache"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    value, hits, misses = map(int, out.stdout.split())
    return value, hits, misses


def _write_package(root, value: int) -> None:
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kern.py").write_text(KERNEL)
    (pkg / "helper.py").write_text(HELPER.format(value=value))


def test_a_change_to_a_helper_file_recompiles_the_cached_kernel(tmp_path):
    _write_package(tmp_path, 1)
    assert _run(tmp_path, True) == (1, 0, 1)  # compiled and cached
    assert _run(tmp_path, True) == (1, 1, 0)  # loaded from the cache: the tracking keeps the cache working
    (tmp_path / "pkg" / "helper.py").write_text(HELPER.format(value=2))  # kern.py itself is unchanged
    assert _run(tmp_path, True) == (2, 0, 1)  # recompiled (Numba's own stamp would load the stale code: 1)
    assert _run(tmp_path, True) == (2, 1, 0)


def test_the_digest_covers_every_python_file_of_the_directory_and_nothing_else(tmp_path):
    _write_package(tmp_path, 1)
    pkg = tmp_path / "pkg"
    base = _config.sources_digest(str(pkg))
    (pkg / "notes.txt").write_text("not a source")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "deeper.py").write_text("x = 1\n")
    assert _config.sources_digest(str(pkg)) == base
    (pkg / "helper.py").write_text(HELPER.format(value=1) + "\n")
    changed = _config.sources_digest(str(pkg))
    assert changed != base
    (pkg / "extra.py").write_text("")
    assert _config.sources_digest(str(pkg)) not in (base, changed)


def test_the_package_kernels_are_stamped_with_the_digest_of_their_directory():
    assert _config.CACHE_TRACKS_ALL_SOURCES
    py_func = finite._count.py_func
    directory = os.path.dirname(inspect.getfile(py_func))
    for cls in CacheImpl._locator_classes:  # the order Numba tries them in
        locator = cls.from_function(py_func, inspect.getfile(py_func))
        if locator is not None:
            break
    assert type(locator).__name__.startswith("SourcesTracking")
    assert locator.get_source_stamp()[1] == _config.sources_digest(directory)
    # a file elsewhere is left to Numba's own locators
    assert all(cls.from_function(test_the_digest_covers_every_python_file_of_the_directory_and_nothing_else,
                                 __file__) is None
               for cls in CacheImpl._locator_classes if cls.__name__.startswith("SourcesTracking"))


def test_dot_files_and_dangling_links_are_not_sources(tmp_path):
    """An editor's lock file (``.#lif.py``, a dangling link) neither breaks the import nor changes the digest."""
    _write_package(tmp_path, 1)
    pkg = tmp_path / "pkg"
    base = _config.sources_digest(str(pkg))
    os.symlink(str(tmp_path / "nowhere"), str(pkg / ".#kern.py"))
    os.symlink(str(tmp_path / "nowhere"), str(pkg / "gone.py"))
    (pkg / ".hidden.py").write_text("x = 1\n")
    assert _config.sources_digest(str(pkg)) == base


def test_tracking_declines_where_it_cannot_take_effect(tmp_path, monkeypatch):
    before = list(CacheImpl._locator_classes)
    assert not _config.track_sources(str(tmp_path / "archive.zip" / "pkg"))  # not a directory: a zip import
    monkeypatch.setattr("numba.config.CACHE_LOCATOR_CLASSES", "UserProvidedCacheLocator")
    _write_package(tmp_path, 1)
    assert not _config.track_sources(str(tmp_path / "pkg"))  # Numba would ignore the list
    assert CacheImpl._locator_classes == before


def test_tracking_a_directory_again_replaces_its_locators(tmp_path, monkeypatch):
    monkeypatch.setattr(CacheImpl, "_locator_classes", list(CacheImpl._locator_classes))
    _write_package(tmp_path, 1)
    count = len(CacheImpl._locator_classes)
    assert _config.track_sources(str(tmp_path / "pkg"))
    assert len(CacheImpl._locator_classes) == count + 3
    (tmp_path / "pkg" / "helper.py").write_text(HELPER.format(value=2))
    assert _config.track_sources(str(tmp_path / "pkg"))
    assert len(CacheImpl._locator_classes) == count + 3
    assert CacheImpl._locator_classes[0].tracked_directory == os.path.realpath(str(tmp_path / "pkg"))


def test_a_file_linked_into_the_directory_is_tracked_there(tmp_path):
    """A kernel file that is a link to a file elsewhere (a link-farm install) is stamped with the digest of the
    directory it is listed in."""
    _write_package(tmp_path, 1)
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    (tmp_path / "pkg" / "kern.py").rename(elsewhere / "kern.py")
    os.symlink(str(elsewhere / "kern.py"), str(tmp_path / "pkg" / "kern.py"))
    assert _run(tmp_path, True) == (1, 0, 1)
    (tmp_path / "pkg" / "helper.py").write_text(HELPER.format(value=2))
    assert _run(tmp_path, True) == (2, 0, 1)
