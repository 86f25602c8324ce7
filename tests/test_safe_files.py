"""The one atomic writer and the one HDF5 opening path (hdlif_ref/_safe_files.py, docs/security.md)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdlif_ref._safe_files import FileWriteError, atomic_write, h5_file_image, open_h5, remove_stale_temps
from tests.hostile_h5 import KNOWN_BYTES, WAYS_OUT, OpenWatch, add_unread_external_link, reach_outside

ROOT = Path(__file__).resolve().parents[1]


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# ----------------------------------------------------------------------------- atomic_write
def test_writes_bytes_text_and_through_a_callable(tmp_path):
    atomic_write(tmp_path / "a.bin", b"\x00\x01")
    atomic_write(tmp_path / "b.txt", "h\u00e9\n", binary=False)
    atomic_write(tmp_path / "c.bin", lambda tmp: Path(tmp).write_bytes(b"xyz"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "h\u00e9\n"
    assert (tmp_path / "c.bin").read_bytes() == b"xyz"
    assert listing(tmp_path) == ["a.bin", "b.txt", "c.bin"]


def test_the_file_gets_the_permissions_a_plain_open_would(tmp_path):
    atomic_write(tmp_path / "a", b"1")
    plain = tmp_path / "plain"
    plain.write_bytes(b"1")
    assert (tmp_path / "a").stat().st_mode == plain.stat().st_mode


def test_content_of_the_wrong_type_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="callable.*or bytes"):
        atomic_write(tmp_path / "a", "text")
    with pytest.raises(TypeError, match="callable.*or str"):
        atomic_write(tmp_path / "a", b"bytes", binary=False)
    assert listing(tmp_path) == []


def test_the_temp_file_sits_in_the_target_directory_with_the_documented_name(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        Path(tmp).write_bytes(b"1")

    atomic_write(tmp_path / "g.h5", write)
    (tmp,) = seen
    assert os.path.dirname(tmp) == str(tmp_path)
    name = os.path.basename(tmp)
    assert name.startswith(f".g.h5.{os.getpid()}-") and name.endswith(".tmp") and len(name) == len(
        f".g.h5.{os.getpid()}-") + 8 + 4


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt(),
                                     ValueError("caller's own error")])
def test_every_failure_leaves_the_previous_file_and_no_temp(tmp_path, failure):
    path = tmp_path / "last.h5"
    path.write_bytes(b"previous")

    def write(tmp):
        Path(tmp).write_bytes(b"half of the new")
        raise failure

    expected = FileWriteError if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected) as info:
        atomic_write(path, write)
    assert path.read_bytes() == b"previous" and listing(tmp_path) == ["last.h5"]
    if expected is FileWriteError:
        message = str(info.value)
        assert len(message.splitlines()) == 1
        assert repr(str(path)) in message and "No space left on device" in message
        assert message.endswith("(the previous file is unchanged)")
        assert info.value.filename == str(path) and info.value.errno == 28


def test_a_failed_fsync_or_rename_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "x"
    path.write_bytes(b"previous")
    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(os, name, lambda *a: (_ for _ in ()).throw(OSError(5, "Input/output error")))
            with pytest.raises(FileWriteError, match="Input/output error"):
                atomic_write(path, b"new")
        assert path.read_bytes() == b"previous" and listing(tmp_path) == ["x"]


@pytest.mark.parametrize("case, reason", [
    ("dir", "it is a directory"),
    ("missing", "does not exist"),
    ("under_file", "is a file, not a directory"),
])
def test_a_bad_destination_is_one_line_with_the_reason(tmp_path, case, reason):
    (tmp_path / "FILE").write_bytes(b"")
    target = {"dir": tmp_path, "missing": tmp_path / "no" / "x.h5", "under_file": tmp_path / "FILE" / "sub"}[case]
    with pytest.raises(FileWriteError) as info:
        atomic_write(target, b"1")
    assert reason in str(info.value) and len(str(info.value).splitlines()) == 1
    assert listing(tmp_path) == ["FILE"]


def test_a_read_only_directory_is_one_line_with_the_os_reason(tmp_path):
    if os.geteuid() == 0:
        # root ignores directory permissions; the same path is taken by a full disk (tested above)
        target = Path("/proc/hdlif-ref-cannot-write-here")
    else:
        os.chmod(tmp_path, 0o500)
        target = tmp_path / "x"
    try:
        with pytest.raises(FileWriteError) as info:
            atomic_write(target, b"1")
    finally:
        os.chmod(tmp_path, 0o700)
    assert len(str(info.value).splitlines()) == 1 and repr(str(target)) in str(info.value)


def _child(code: str, *, limit_blocks: int | None = None) -> subprocess.CompletedProcess:
    def limit():
        if limit_blocks is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_blocks * 1024, limit_blocks * 1024))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)


def test_a_file_size_limit_is_a_clean_error_even_if_sigxfsz_was_not_ignored(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"previous")
    done = _child(f"""
        import signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)   # what an embedding application may leave
        from hdlif_ref._safe_files import atomic_write, FileWriteError
        try:
            atomic_write({str(path)!r}, b"x" * 200_000)
        except FileWriteError as e:
            print(e); sys.exit(3)
    """, limit_blocks=20)
    assert done.returncode == 3, done.stderr
    assert "File too large" in done.stdout and len(done.stdout.strip().splitlines()) == 1
    assert path.read_bytes() == b"previous" and listing(tmp_path) == ["big.bin"]


def test_a_killed_writer_leaves_a_temp_that_the_next_write_removes(tmp_path):
    path = tmp_path / "last.h5"
    path.write_bytes(b"previous")
    done = _child(f"""
        import os, signal
        from hdlif_ref._safe_files import atomic_write
        def write(tmp):
            open(tmp, "wb").write(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_write({str(path)!r}, write)
    """)
    assert done.returncode == -signal.SIGKILL
    stale = [n for n in listing(tmp_path) if n != "last.h5"]
    assert len(stale) == 1 and stale[0].startswith(".last.h5.") and path.read_bytes() == b"previous"
    atomic_write(tmp_path / "other.json", b"{}")  # any successful write to the directory cleans up
    assert listing(tmp_path) == ["last.h5", "other.json"]


def test_temps_of_running_writers_and_foreign_files_are_kept(tmp_path):
    alive = f".last.h5.{os.getppid()}-abcdefgh.tmp"  # our parent process runs
    foreign = ["notes.tmp", ".last.h5.tmp", ".x.123-ABCDEFGH.tmp", ".x.12-abc.tmp"]
    dead = ".best.h5.999999999-abcd_fgh.tmp"  # above any pid_max: no such process
    for name in [alive, dead] + foreign:
        (tmp_path / name).write_bytes(b"")
    os.mkdir(tmp_path / ".d.999999998-abcdefgh.tmp")  # a directory is never removed
    assert remove_stale_temps(tmp_path) == [dead]
    assert listing(tmp_path) == sorted([alive, ".d.999999998-abcdefgh.tmp"] + foreign)


def test_temps_of_the_older_pattern_are_stale_after_ten_minutes(tmp_path):
    old, young = tmp_path / ".best.h5.ek9erxb1.tmp", tmp_path / ".last.h5.fsouzkav.tmp"
    for p in (old, young):
        p.write_bytes(b"")
    os.utime(old, (0, os.stat(old).st_mtime - 601))
    assert remove_stale_temps(tmp_path) == [old.name] and listing(tmp_path) == [young.name]


def test_own_temps_are_stale_only_when_no_write_is_under_way(tmp_path):
    own = tmp_path / f".a.{os.getpid()}-abcdefgh.tmp"
    own.write_bytes(b"")
    seen = []

    def write(tmp):
        seen.append(sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp")))
        assert remove_stale_temps(tmp_path) == [own.name]  # our own in-flight temp is kept
        Path(tmp).write_bytes(b"1")

    atomic_write(tmp_path / "a", write)
    assert len(seen[0]) == 2 and listing(tmp_path) == ["a"]


# ----------------------------------------------------------------------------- h5_file_image
def test_an_hdf5_image_is_built_in_memory_and_reads_back(tmp_path):
    def fill(f):
        f["x"] = np.arange(5.0)
        f.attrs["format"] = "demo"

    image = h5_file_image(fill, userblock_size=512, libver=("v110", "latest"))
    assert image[512:520] == b"\x89HDF\r\n\x1a\n" and listing(tmp_path) == []
    atomic_write(tmp_path / "d.h5", image)
    with open_h5(tmp_path / "d.h5") as f:
        assert f.attrs["format"] == "demo" and f["x"][()].tolist() == [0, 1, 2, 3, 4]


def test_an_hdf5_writer_under_a_file_size_limit_fails_cleanly(tmp_path):
    """The golden writer's crash (issue 18, item 3) in its smallest form: HDF5 writing to disk under
    ``ulimit -f`` reported the failures from destructors and then crashed; an in-memory image cannot."""
    path = tmp_path / "g.h5"
    path.write_bytes(b"previous")
    done = _child(f"""
        import sys, numpy as np
        from hdlif_ref._safe_files import atomic_write, h5_file_image, FileWriteError
        def fill(f):
            for i in range(40):
                f.create_dataset(f"cases/c{{i}}/x", data=np.random.default_rng(i).random(400))
        try:
            atomic_write({str(path)!r}, h5_file_image(fill))
        except FileWriteError as e:
            print(e); sys.exit(3)
    """, limit_blocks=20)
    assert done.returncode == 3, done.stderr
    assert done.stderr == "" and "File too large" in done.stdout
    assert path.read_bytes() == b"previous" and listing(tmp_path) == ["g.h5"]


# ----------------------------------------------------------------------------- open_h5
def good_file(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("events/x", data=np.arange(10, dtype=np.int64))
        f.create_dataset("events/z", data=np.arange(10.0), compression="gzip", shuffle=True, fletcher32=True)
        f["soft"] = h5py.SoftLink("/events/x")
        f["events/rel"] = h5py.SoftLink("x")  # relative to /events
        f["events/again"] = f["events"]  # a hard-link cycle
    return path


def test_an_ordinary_file_with_soft_links_inside_and_cycles_opens(tmp_path):
    with open_h5(good_file(tmp_path / "ok.h5")) as f:
        assert f["soft"][()].tolist() == list(range(10)) and f["events/rel"][3] == 3
    assert not f  # closed by the context manager


@pytest.mark.parametrize("way", WAYS_OUT)
def test_every_way_out_of_the_file_is_refused_and_nothing_outside_is_opened(tmp_path, way):
    path = good_file(tmp_path / "evil.h5")
    watched = reach_outside(path, "events/z", way)
    with OpenWatch(watched) as watch:
        with pytest.raises(ValueError) as info:
            open_h5(path, what="event file")
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"event file {str(path)!r}: ")
    assert ("/events/z" if way != "external_link_group" else "/outside is an external link") in message
    assert watch.events == []
    assert KNOWN_BYTES[:8].decode() not in message


def test_an_external_link_nobody_reads_is_refused_too(tmp_path):
    path = good_file(tmp_path / "evil.h5")
    watched = add_unread_external_link(path)
    with OpenWatch(watched) as watch:
        with pytest.raises(ValueError, match=r"/zz_unread is an external link to 'target.h5'"):
            open_h5(path)
    assert watch.events == []


def test_the_watch_itself_sees_a_read(tmp_path):
    """The test above can fail: following the external link is seen by the watch."""
    path = good_file(tmp_path / "evil.h5")
    watched = reach_outside(path, "events/x", "external_link")
    with OpenWatch(watched) as watch:
        with h5py.File(path, "r") as f:
            assert f["events/x"][0] != 0  # the other file's values
    assert ("target.h5", "open") in watch.events


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"not hdf5 at all"), "not a readable HDF5 file"),
    (lambda p: os.mkfifo(p), "not a regular file"),
])
def test_what_is_not_an_hdf5_file_is_the_callers_error(tmp_path, make, message):
    class MyError(ValueError):
        pass

    path = tmp_path / "x.h5"
    make(path)
    with pytest.raises(MyError, match=message) as info:
        open_h5(path, error=MyError, what="golden file")
    assert str(info.value).startswith(f"golden file {str(path)!r}: ")


@pytest.mark.parametrize("module, allowed", [("_safe_files.py", {"numpy", "h5py"}), ("_domains.py", {"numpy"})])
def test_the_basement_modules_import_only_the_standard_library_numpy_and_h5py(module, allowed):
    """Every floor may import them (docs/design.md), so they import nothing of the package."""
    import ast

    tree = ast.parse((ROOT / "hdlif_ref" / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module} imports .{node.module}"
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in allowed or top in sys.stdlib_module_names, f"{module} imports {name}"
