"""Files that cannot be turned against the user: one atomic writer, one HDF5 opening path.

Imports only the standard library, numpy and h5py, so every floor of the package may use it
(docs/security.md).

* :func:`atomic_write` is how every file of the project is written (checkpoints, frozen
  models, golden files, reports, plots, results, logs). The content goes to a temporary
  file ``.<basename>.<pid>-<random>.tmp`` in the target directory, is fsynced, renamed over
  the target with ``os.replace`` and the directory is fsynced. On every failure path
  (an OS error, ``KeyboardInterrupt``, a file-size limit, an exception of the caller's
  ``write``) the temporary file is removed and the previous file is left as it was; an OS
  error becomes one :class:`FileWriteError` line naming the path and the reason. After a
  successful write, temporary files of this pattern left in the directory by processes
  that no longer run (a ``SIGKILL`` mid-write) are removed.
* :func:`h5_file_image` builds an HDF5 file in memory (HDF5's core driver, no backing
  store) and returns its bytes: HDF5 writers hand those bytes to :func:`atomic_write`, so
  the HDF5 library never writes to disk. (HDF5 2.0 keeps writing after a failed write,
  reports the failures only from object destructors, and can then crash the process in
  ``File.close``: ``ulimit -f 20; hdlif-ref golden g.h5`` ended in a segmentation fault.)
* :func:`open_h5` is how every HDF5 file is read. Before it returns, it walks every link
  of the file and refuses, with one line naming the file and the HDF5 object, anything
  that would make the HDF5 library open or read another file: external links, soft links
  that dangle or loop, user-defined links, virtual datasets, datasets with external raw
  storage, and filters other than the built-in ones (an unknown filter id makes HDF5 load
  a plugin library from disk). It opens with the ``sec2`` driver explicitly, so an
  ``HDF5_DRIVER`` environment variable cannot make it read a file family or split files.
"""
from __future__ import annotations

import errno as _errno
import itertools
import os
import re
import secrets
import signal
import stat
import threading
import time
from typing import Any, Callable, Union

import h5py

__all__ = ["FileWriteError", "atomic_write", "h5_file_image", "open_h5"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
#: ``.<basename>.<pid>-<8 random characters>.tmp``: the temporary files of :func:`atomic_write`.
TEMP_PATTERN = re.compile(r"^\.(?P<base>.+)\.(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}\.tmp$")
#: ``.<basename>.<8 random characters>.tmp``: what hdlif-ref <= 0.1 wrote (``mkstemp``, no process id);
#: stale when untouched for :data:`LEGACY_TEMP_AGE` seconds.
LEGACY_TEMP_PATTERN = re.compile(r"^\.(?P<base>.+)\.[a-z0-9_]{8}\.tmp$")
LEGACY_TEMP_AGE = 600.0
_in_flight: set[str] = set()  # temporary files this process is writing now (never removed as stale)
_in_flight_lock = threading.Lock()
_image_names = itertools.count()

#: Filters HDF5 (or h5py) implements itself: deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf.
BUILTIN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset",
                   32000: "lzf"}
_MAX_SOFT_LINK_HOPS = 16  # HDF5's own limit on nested link traversals


# ----------------------------------------------------------------------------- writing
class FileWriteError(OSError):
    """Writing ``path`` failed; any previous file there is unchanged.

    ``str()`` is one line naming the path and the operating system's reason; ``filename``
    is the path, ``errno`` the OS error number when there is one.
    """

    def __init__(self, path: str, reason: str, errno: int | None = None):
        super().__init__(errno, reason, path)
        self.path, self.reason = path, reason
        self.kept = os.path.isfile(path)  # a previous file is there, untouched

    def __str__(self) -> str:
        return f"cannot write {self.path!r}: {self.reason}" + (" (the previous file is unchanged)" if self.kept else "")

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.errno))


Content = Union[Callable[[str], Any], bytes, bytearray, memoryview, str]


def atomic_write(path: str | os.PathLike, write: Content, *, binary: bool = True) -> None:
    """Create or replace ``path`` atomically.

    Parameters
    ----------
    path : the file to write; its directory must exist.
    write : a callable ``write(tmp_path: str)`` that writes the whole file at ``tmp_path``
        (the temporary file, already created and empty), or the content itself: ``bytes``
        (``binary=True``) or ``str`` (``binary=False``, written as UTF-8).
    binary : whether content given directly is bytes (True) or text (False).

    Raises
    ------
    FileWriteError
        An operating-system error (missing directory, no space, file-size limit,
        permissions, ...): one line naming ``path`` and the reason.
    Anything ``write`` raises (other than an ``OSError``) propagates unchanged; in every
    case the temporary file is removed and the previous file is untouched.
    """
    path = os.fspath(path)
    data = None
    if not callable(write):
        data = _content(write, binary)
    target = os.path.abspath(path)
    directory, base = os.path.split(target)
    _check_destination(path, target, directory)
    tmp, fd = _create_temp(path, directory, base)
    restore = lambda: None  # noqa: E731
    try:
        try:
            with _in_flight_lock:
                _in_flight.add(tmp)
            restore = _ignore_sigxfsz()
            if data is None:
                os.close(fd)
                fd = -1
                write(tmp)
            else:
                _write_all(fd, data)
                os.close(fd)
                fd = -1
            _fsync_path(tmp)
            os.replace(tmp, target)
        except BaseException as exc:
            if fd >= 0:
                _close_quietly(fd)
            _remove_quietly(tmp)
            if isinstance(exc, FileWriteError):
                raise
            if isinstance(exc, OSError):
                raise FileWriteError(path, _reason(exc, path, tmp), exc.errno) from exc
            raise
    finally:
        restore()
        with _in_flight_lock:
            _in_flight.discard(tmp)
    _fsync_directory(directory)
    remove_stale_temps(directory)


def h5_file_image(fill: Callable[[h5py.File], None], **file_options: Any) -> bytes:
    """The bytes of an HDF5 file built in memory by ``fill(f)``; nothing touches the disk.

    ``file_options`` go to ``h5py.File`` (``libver``, ``userblock_size``, ...). Use it as
    ``atomic_write(path, h5_file_image(fill))``. HDF5's in-memory image leaves out the user
    block; it is put back here (zero bytes), so the bytes are the whole file.
    """
    name = f"hdlif-ref-image-{os.getpid()}-{next(_image_names)}-{secrets.token_hex(4)}"
    f = h5py.File(name, "w", driver="core", backing_store=False, **file_options)
    try:
        fill(f)
        f.flush()
        image = f.id.get_file_image()
        return bytes(f.userblock_size) + image if f.userblock_size else image
    finally:
        f.close()


def remove_stale_temps(directory: str | os.PathLike) -> list[str]:
    """Remove temporary files of :func:`atomic_write` in ``directory`` whose writer no longer runs.

    A temporary file names its writer's process id; it is stale when no process has that id
    (checked with ``kill(pid, 0)``) or when it is this process and no write of it is under
    way. A temporary file of the older pattern without a process id (:data:`LEGACY_TEMP_PATTERN`)
    is stale when it has not been modified for :data:`LEGACY_TEMP_AGE` seconds. Returns the
    names removed. Failures are ignored: this is housekeeping.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    own, now = os.getpid(), time.time()
    for name in names:
        match = TEMP_PATTERN.match(name)
        legacy = match is None and LEGACY_TEMP_PATTERN.match(name) is not None
        if not match and not legacy:
            continue
        full = os.path.join(os.fspath(directory), name)
        try:
            info = os.lstat(full)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        with _in_flight_lock:
            busy = full in _in_flight or os.path.abspath(full) in _in_flight
        if busy:
            continue
        if legacy:
            if now - info.st_mtime < LEGACY_TEMP_AGE:
                continue
        else:
            pid = int(match.group("pid"))
            if pid != own and _process_exists(pid):
                continue
        try:
            os.remove(full)
            removed.append(name)
        except OSError:
            pass
    return removed


def _content(write: Any, binary: bool) -> bytes:
    if binary:
        if isinstance(write, (bytes, bytearray, memoryview)):
            return bytes(write)
        raise TypeError(f"atomic_write: write must be a callable(tmp_path) or bytes (binary=True), "
                        f"got {type(write).__name__}")
    if isinstance(write, str):
        return write.encode("utf-8")
    raise TypeError(f"atomic_write: write must be a callable(tmp_path) or str (binary=False), "
                    f"got {type(write).__name__}")


def _check_destination(path: str, target: str, directory: str) -> None:
    """Refuse early, with the real reason, what ``mkstemp``/``os.replace`` would report obscurely."""
    if os.path.isdir(target):
        raise FileWriteError(path, "it is a directory; give a file name", _errno.EISDIR)
    if not os.path.isdir(directory):
        probe = directory
        while probe and not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if os.path.exists(probe) and not os.path.isdir(probe):
            raise FileWriteError(path, f"{probe!r} is a file, not a directory", _errno.ENOTDIR)
        raise FileWriteError(path, f"the directory {directory!r} does not exist", _errno.ENOENT)


def _create_temp(path: str, directory: str, base: str) -> tuple[str, int]:
    """Create ``.<base>.<pid>-<random>.tmp`` exclusively (mode 0o666 minus the umask, as a plain open would)."""
    prefix = f".{base}.{os.getpid()}-"
    for _ in range(100):
        tmp = os.path.join(directory, prefix + "".join(secrets.choice(_ALPHABET) for _ in range(8)) + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise FileWriteError(path, _reason(exc, path, tmp), exc.errno) from None
        return tmp, fd
    raise FileWriteError(path, "could not create a temporary file in its directory (100 names taken)",
                         _errno.EEXIST)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _reason(exc: OSError, path: str, tmp: str) -> str:
    """The OS reason of ``exc`` in one line (HDF5's messages run over several lines)."""
    text = exc.strerror or str(exc) or type(exc).__name__
    text = " ".join(str(text).split())
    if exc.errno is not None and not exc.strerror:
        text = f"{os.strerror(exc.errno)} ({text})" if exc.errno > 0 else text
    shown = getattr(exc, "filename", None)
    if shown and os.fspath(shown) not in (path, tmp, os.path.abspath(path)):
        text += f" ({os.fspath(shown)!r})"
    return text[:400]


def _ignore_sigxfsz() -> Callable[[], None]:
    """Make a file-size limit (``ulimit -f``) fail the write with EFBIG instead of killing the process.

    CPython already ignores SIGXFSZ at start-up; an embedding application may not. Signal
    handlers can be changed only in the main thread: elsewhere this does nothing.
    """
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        previous = signal.getsignal(sig)
        if previous == signal.SIG_IGN:
            return lambda: None
        signal.signal(sig, signal.SIG_IGN)
    except (ValueError, OSError):
        return lambda: None
    return lambda: signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OSError, OverflowError):
        return False
    return True


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# ----------------------------------------------------------------------------- reading
def open_h5(path: str | os.PathLike, *, error: type[Exception] = ValueError, what: str = "file") -> h5py.File:
    """Open an HDF5 file read-only after refusing everything that reaches outside it.

    Returns an open ``h5py.File`` (use it as a context manager). Raises ``error`` with one
    line naming ``what``, the path and, for a refused object, the HDF5 path of the object:
    the file is missing, a directory or not a regular file, not HDF5, or holds an external
    link, a user-defined link, a soft link that dangles or loops, a virtual dataset, a
    dataset with external raw storage, or a dataset with a filter HDF5 would load as a
    plugin. Nothing outside ``path`` is opened or read.
    """
    path = os.fspath(path)
    where = f"{what} {path!r}"
    if not os.path.exists(path):
        raise error(f"{where}: no such file")
    if os.path.isdir(path):
        raise error(f"{where}: is a directory, not an HDF5 file")
    if not os.path.isfile(path):
        raise error(f"{where}: is not a regular file")
    try:
        f = h5py.File(path, "r", driver="sec2")
    except Exception as exc:  # h5py reports a damaged or foreign file as OSError, sometimes others
        raise error(f"{where}: not a readable HDF5 file (truncated or corrupt?): "
                    f"{' '.join(str(exc).split())[:200]}") from None
    try:
        refusal = _first_refusal(f)
    except Exception as exc:  # a damaged file can fail while its links are listed
        f.close()
        raise error(f"{where}: its links cannot be listed (corrupt?): {' '.join(str(exc).split())[:200]}") from None
    if refusal is not None:
        f.close()
        raise error(f"{where}: {refusal}; refused: an HDF5 file is read only when all of it lies inside "
                    f"the file (docs/security.md)")
    return f


def _first_refusal(f: h5py.File) -> str | None:
    """The first link or dataset of ``f`` that reaches outside it, described; None if there is none."""
    links: list[tuple[str, Any]] = []
    f.visititems_links(lambda name, link: links.append((name, link)))  # hard-linked groups, each once
    for name, link in links:
        if isinstance(link, h5py.ExternalLink):
            return f"/{name} is an external link to {link.filename!r}:{link.path}"
        if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            return f"/{name} is a {type(link).__name__} (only hard and soft links inside the file are read)"
    for name, link in links:
        if isinstance(link, h5py.SoftLink):
            problem = _soft_link_problem(f, "/" + name.rpartition("/")[0], link.path)
            if problem:
                return f"/{name} is a soft link to {link.path!r} that {problem}"
    for name, link in links:
        if isinstance(link, h5py.HardLink):
            obj = f.get(name)
            if isinstance(obj, h5py.Dataset):
                problem = _dataset_problem(obj)
                if problem:
                    return f"dataset /{name} {problem}"
    return None


def _soft_link_problem(f: h5py.File, group: str, target: str) -> str | None:
    """Resolve a soft link of ``group`` by hand, one link at a time (no external link can be on the way:
    they were refused before); return why it does not resolve, or None."""
    hops = 0
    pending = [part for part in target.split("/") if part and part != "."]
    node = "/" if target.startswith("/") else group
    while pending:
        part = pending.pop(0)
        if part == "..":
            return "climbs above a group ('..' is not an HDF5 path component)"
        group = f.get(node)
        if not isinstance(group, h5py.Group):
            return "dangles (a component is not a group)"
        link = group.get(part, getlink=True)
        if link is None:
            return "dangles (no such object)"
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > _MAX_SOFT_LINK_HOPS:
                return f"loops (more than {_MAX_SOFT_LINK_HOPS} soft links in a row)"
            rest = [p for p in link.path.split("/") if p and p != "."]
            if link.path.startswith("/"):
                node = "/"
            pending = rest + pending
            continue
        if not isinstance(link, h5py.HardLink):
            return f"passes through a {type(link).__name__}"
        node = node.rstrip("/") + "/" + part
    return None


def _dataset_problem(ds: h5py.Dataset) -> str | None:
    if ds.is_virtual:
        sources = [f"{m.file_name!r}:{m.dset_name}" for m in ds.virtual_sources()][:3]
        return f"is a virtual dataset mapped onto {', '.join(sources) or 'other files'}"
    external = ds.external
    if external:
        return f"stores its data in the external file(s) {', '.join(repr(os.fsdecode(e[0])) for e in external[:3])}"
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in BUILTIN_FILTERS:
            return f"uses filter id {code}, which HDF5 would load as a plugin library (built-in filters: " \
                   f"{', '.join(sorted(BUILTIN_FILTERS.values()))})"
    return None
