"""The restricted unpickler (issue 7, item 8): arrays and containers in, code execution out."""
from __future__ import annotations

import builtins
import os
import pickle
import subprocess

import numpy as np
import pytest

from hdlif_ref.datasets import DatasetFormatError, UnsafePickleError
from hdlif_ref.datasets._safe_pickle import _DtypeStub, _NDArrayClass, restricted_loads

from .formats import py2_cifar_pickle


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsSubprocess:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


class _RunsEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [_RunsShell, _RunsSubprocess, _RunsEval])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_executing_pickle_is_refused_and_never_runs(tmp_path, payload, protocol):
    marker = tmp_path / "pwned"
    # sanity: the stdlib unpickler really runs this payload
    pickle.loads(pickle.dumps(payload(tmp_path / "control"), protocol=protocol))
    assert (tmp_path / "control").exists()
    evil = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [payload(marker)]}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        restricted_loads(evil, source="evil.pkl")
    assert not marker.exists()


def test_build_on_an_allowed_class_is_refused():
    # GLOBAL numpy.ndarray (our stand-in class) then BUILD with (None, {"x": 1}) would setattr on the class
    evil = b"\x80\x02cnumpy\nndarray\nN}U\x01xK\x01s\x86b."
    with pytest.raises(UnsafePickleError, match="BUILD"):
        restricted_loads(evil)
    assert not hasattr(_NDArrayClass, "x")
    assert not hasattr(_DtypeStub, "x")


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.arange(6, dtype=">i4").reshape(2, 3),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.arange(12, dtype=np.int64)[::3],
    np.array([True, False]),
    np.zeros((0, 3), np.float32),
])
def test_numpy_arrays_round_trip_in_every_protocol(protocol, array):
    obj = {b"a": array, "nested": [array, (1, 2.5, b"x", None)], "s": np.float32(1.5), "set": {1, 2}}
    back = restricted_loads(pickle.dumps(obj, protocol=protocol))
    for got in (back[b"a"], back["nested"][0]):
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)
    assert back["nested"][1] == (1, 2.5, b"x", None)
    assert back["s"] == np.float32(1.5) and back["set"] == {1, 2}


def test_python2_cpickle_batch_reads_like_the_stdlib():
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    blob = py2_cifar_pickle({b"batch_label": [b"x"], b"labels": [3, 7], b"data": data,
                             b"filenames": [b"a.png", b"b.png"]})
    expected = pickle.loads(blob, encoding="bytes")  # the trusted reference on our own bytes
    got = restricted_loads(blob)
    assert got.keys() == expected.keys()
    np.testing.assert_array_equal(got[b"data"], expected[b"data"])
    assert got[b"labels"] == expected[b"labels"] == [3, 7]
    assert got[b"filenames"] == [b"a.png", b"b.png"]


@pytest.mark.parametrize("array", [
    np.array([object(), 1], dtype=object),
    np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]),
    np.array(["ab", "c"]),
])
def test_object_structured_and_string_arrays_are_refused(array):
    with pytest.raises(DatasetFormatError):
        restricted_loads(pickle.dumps(array, protocol=2))


def test_codecs_encode_only_with_latin1():
    import codecs

    class _Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="latin1"):
        restricted_loads(pickle.dumps(_Rot13(), protocol=2))


def test_truncated_pickle_is_a_format_error():
    blob = pickle.dumps({b"data": np.arange(100, dtype=np.uint8)}, protocol=2)
    with pytest.raises(DatasetFormatError):
        restricted_loads(blob[:-10])


def test_bytearray8_length_field_never_sizes_an_allocation(monkeypatch):
    # The stdlib's pure-Python unpickler runs bytearray(n) with n from the file before reading;
    # spy on that name inside the pickle module: it must not be reached.
    calls = []
    monkeypatch.setattr(pickle, "bytearray", lambda *a: calls.append(a) or bytearray(*a), raising=False)
    claimed = 1 << 33
    evil = b"\x80\x05\x96" + claimed.to_bytes(8, "little") + b"only a few bytes."
    with pytest.raises(DatasetFormatError, match="truncated"):
        restricted_loads(evil)
    assert calls == []
    ok = pickle.dumps(bytearray(b"abc"), protocol=5)
    assert restricted_loads(ok) == bytearray(b"abc")


# ----------------------------------------------------------------------------- bombs (issue 18, item 2)
def shared_nest(depth: int) -> list:
    """``d = [d, d]`` ``depth`` times: a few kilobytes of pickle, 2**depth leaves when expanded."""
    d: list = []
    for _ in range(depth):
        d = [d, d]
    return d


def bomb_batch(where: str, depth: int = 40) -> bytes:
    entry = {b"batch_label": b"x", b"labels": [3, 7], b"data": np.zeros((2, 3072), np.uint8),
             b"filenames": [b"a.png", b"b.png"]}
    entry[where.encode()] = shared_nest(depth)
    return pickle.dumps(entry, protocol=2)


def test_the_bomb_is_small():
    assert len(bomb_batch("labels")) < 8000


@pytest.mark.parametrize("depth", [5, 40])
def test_deep_shared_nesting_is_refused_by_the_unpickler_naming_the_field(depth):
    with pytest.raises(DatasetFormatError, match=r"bomb: \[b'labels'\]\[0\]\[0\]\[0\] nests containers deeper "
                                                 r"than 4 levels"):
        restricted_loads(bomb_batch("labels", depth), source="bomb")


def test_a_shared_container_met_again_deeper_is_held_to_the_same_bound():
    inner = [[1]]  # height 2
    obj = {"a": inner, "b": [[inner]]}  # first at depth 1 (fine), then at depth 3: levels 3, 4 > 4 allowed
    with pytest.raises(DatasetFormatError, match=r"\['b'\]\[0\]\[0\] nests containers deeper than 4"):
        restricted_loads(pickle.dumps(obj, protocol=2))
    assert restricted_loads(pickle.dumps({"a": inner, "b": [inner]}, protocol=2))["b"] == [[[1]]]


def test_a_container_that_contains_itself_is_refused():
    loop: list = [1]
    loop.append(loop)
    with pytest.raises(DatasetFormatError, match=r"\[1\] contains itself"):
        restricted_loads(pickle.dumps(loop, protocol=2), max_depth=64)


def test_the_number_of_container_items_is_bounded():
    blob = pickle.dumps({"labels": list(range(1000))}, protocol=2)
    with pytest.raises(DatasetFormatError, match=r"\['labels'\] brings the pickle to more than 500 container items"):
        restricted_loads(blob, max_items=500)
    assert len(restricted_loads(blob)["labels"]) == 1000


BOMB_READERS = {
    # field of the bomb -> code run on a directory holding it, in a child process
    "labels": "read_cifar_python_batch(root / 'cifar-10-batches-py' / 'data_batch_1')",
    "data": "read_cifar_python_batch(root / 'cifar-10-batches-py' / 'data_batch_1')",
    "label_names": "_names_from_pickle(root / 'cifar-10-batches-py' / 'batches.meta', 'label_names', 10)",
    "fine_labels": "cifar100('test', root, check_counts=False)",
    "shallow_labels": "read_cifar_python_batch(root / 'cifar-10-batches-py' / 'data_batch_1')",
}


@pytest.mark.parametrize("field", list(BOMB_READERS))
def test_every_reader_of_pickled_data_refuses_the_bomb_in_under_a_second(tmp_path, field):
    """Issue 18: a 6.7 KB CIFAR batch whose labels are ``d = [d, d]`` nested 40 deep hung the reader
    (``np.asarray`` before any shape check; depth 22 took 1.35 s, doubling per level). Run in a child
    process with a time limit, so a regression fails instead of hanging the suite."""
    import sys
    import textwrap

    py = tmp_path / "cifar-10-batches-py"
    py.mkdir()
    if field == "shallow_labels":  # within the depth bound: 10,000 references to one list of 10,000 ints
        inner = [1] * 10_000
        blob = pickle.dumps({b"labels": [inner] * 10_000, b"data": np.zeros((10_000, 3072), np.uint8)}, protocol=2)
    elif field == "label_names":
        blob = pickle.dumps({b"label_names": shared_nest(40)}, protocol=2)
    elif field == "fine_labels":
        c100 = tmp_path / "cifar-100-python"
        c100.mkdir()
        (c100 / "train").write_bytes(b"")
        blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"coarse_labels": [1, 2],
                             b"fine_labels": shared_nest(40)}, protocol=2)
        (c100 / "test").write_bytes(blob)
    else:
        blob = bomb_batch(field)
    (py / ("batches.meta" if field == "label_names" else "data_batch_1")).write_bytes(blob)
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from hdlif_ref.datasets import DatasetFormatError
        from hdlif_ref.datasets.cifar import read_cifar_python_batch, _names_from_pickle, cifar100
        root = Path({str(tmp_path)!r})
        start = time.perf_counter()
        try:
            {BOMB_READERS[field]}
        except DatasetFormatError as e:
            print(f"{{time.perf_counter() - start:.3f}}")
            print(e)
        else:
            print("accepted")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, message = done.stdout.strip().split("\n", 1)
    assert float(seconds) < 1.0, (seconds, message)
    expected = "label_names" if field == "label_names" else "labels" if field == "shallow_labels" else field
    assert expected in message and "\n" not in message, message
