"""HDF5 checkpoints: exact round trip, exact resume, documented layout, damaged files, atomic writes."""
import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdlif_ref._safe_files import FileWriteError
from hdlif_ref.layers import Parameter
from hdlif_ref.training import checkpoint
from hdlif_ref.training import (FORMAT, FORMAT_VERSION, Adam, CheckpointError, CosineSchedule, LinearWarmup,
                                SGD, load_checkpoint, save_checkpoint)


def assert_same(a, b, where="parts"):
    """Equal values of equal types; arrays bit for bit with the same dtype and shape."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), f"{where}: {a.dtype}{np.shape(a)} vs {b.dtype}{np.shape(b)}"
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def training_parts(seed=0):
    """Parts of a real run: model arrays of several dtypes and shapes, Adam and warm-up/cosine states."""
    rng = np.random.default_rng(seed)
    model_state = {
        "conv.weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32),
        "conv.bias": rng.normal(size=4).astype(np.float32),
        "neuron.lam": rng.uniform(size=(4, 3)),
        "bn.running_var": np.ones(3, dtype=np.float32),
        "bn.num_batches": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3)),
        "mask": np.array([True, False]),
    }
    params = [Parameter(model_state["conv.weight"].copy()), Parameter(model_state["neuron.lam"].copy())]
    opt = Adam([{"params": params[:1], "param_names": ["conv.weight"]},
                {"params": params[1:], "param_names": ["neuron.lam"], "weight_decay": 0.0}], lr=0.01,
               weight_decay=1e-4)
    sched = LinearWarmup(CosineSchedule(opt, 20, eta_min=1e-5), 3)
    for _ in range(2):
        for p in params:
            p.grad = rng.normal(size=p.shape).astype(p.dtype)
        opt.step()
        sched.step()
    return dict(model_state=model_state, optimizer_state=opt.state_dict(), scheduler_state=sched.state_dict(),
                extra={"history": [0.5, float("nan"), -np.inf], "flags": (True, None, "text", "")},
                epoch=2, step=14, rng_state=rng.bit_generator.state,
                config={"model": "digits_net", "T": 4, "lr": 0.01, "nested": {"k": [1, 2]}}, best_metric=0.875)


def test_round_trip_returns_every_part_exactly(tmp_path):
    parts = training_parts()
    path = tmp_path / "last.h5"
    save_checkpoint(path, **parts)
    loaded = load_checkpoint(path)
    assert_same(loaded, parts)
    save_checkpoint(tmp_path / "copy.h5", **loaded)  # what load returns is what save takes
    assert_same(load_checkpoint(tmp_path / "copy.h5"), parts)


def test_defaults_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.h5", model_state={})
    assert load_checkpoint(tmp_path / "c.h5") == dict(
        model_state={}, optimizer_state=None, scheduler_state=None, extra=None, epoch=0, step=0,
        rng_state=None, config=None, best_metric=None)


def test_documented_layout(tmp_path):
    parts = training_parts()
    path = tmp_path / "c.h5"
    save_checkpoint(path, **parts)
    with h5py.File(path, "r") as f:  # read with plain h5py, as another implementation would
        assert f.attrs["format"] == FORMAT == "hdlif-checkpoint" and f.attrs["format_version"] == FORMAT_VERSION
        assert int(f.attrs["epoch"]) == 2 and int(f.attrs["step"]) == 14 and f.attrs["best_metric"] == 0.875
        assert json.loads(f.attrs["config"]) == parts["config"]
        assert json.loads(f.attrs["rng_state"]) == parts["rng_state"]
        assert sorted(f.keys()) == ["extra", "model", "optimizer", "scheduler"]
        np.testing.assert_array_equal(f["model/conv.weight"][()], parts["model_state"]["conv.weight"])
        assert f["model"].attrs["kind"] == "dict" and json.loads(f["model"].attrs["keys"]) == list(parts["model_state"])
        np.testing.assert_array_equal(f["optimizer/state/0/exp_avg"][()],
                                      parts["optimizer_state"]["state"][0]["exp_avg"])
        assert f["optimizer/param_groups"].attrs["kind"] == "list"
        assert f["optimizer/param_groups/0/betas"].attrs["kind"] == "tuple"
        assert f["scheduler/last_step"][()] == 2 and f["scheduler/last_step"].attrs["kind"] == "int"


def test_resume_continues_exactly_as_the_uninterrupted_run(tmp_path):
    """Optimizer, schedule and RNG restored from a file give the same parameters as never stopping."""
    target = np.linspace(-1, 1, 6)

    def make(w0):
        p = Parameter(w0.copy())
        opt = SGD([p], lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3)
        return p, opt, LinearWarmup(CosineSchedule(opt, 8), 2)

    def train(p, opt, sched, rng, steps):
        for _ in range(steps):
            noise = rng.normal(size=p.shape)  # a stochastic gradient: needs the RNG restored too
            p.grad = (p.data - target) + 0.1 * noise
            opt.step()
            sched.step()

    w0 = np.random.default_rng(1).normal(size=6)
    p, opt, sched = make(w0)
    train(p, opt, sched, np.random.default_rng(2), 10)

    p1, opt1, sched1 = make(w0)
    rng1 = np.random.default_rng(2)
    train(p1, opt1, sched1, rng1, 4)
    save_checkpoint(tmp_path / "c.h5", model_state={"w": p1.data}, optimizer_state=opt1.state_dict(),
                    scheduler_state=sched1.state_dict(), rng_state=rng1.bit_generator.state, step=4)
    del p1, opt1, sched1, rng1

    parts = load_checkpoint(tmp_path / "c.h5")
    p2, opt2, sched2 = make(np.zeros(6))
    p2.data[:] = parts["model_state"]["w"]
    opt2.load_state_dict(parts["optimizer_state"])
    sched2.load_state_dict(parts["scheduler_state"])
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = parts["rng_state"]
    train(p2, opt2, sched2, rng2, 6)
    np.testing.assert_array_equal(p2.data, p.data)


# --------------------------------------------------------------------------- damaged files
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.h5")


@pytest.mark.parametrize("content, match", [
    (b"", "not an HDF5 file"),
    (b"not an hdf5 file\n" * 10, "not an HDF5 file"),
    (b"hdlif-checkpoint\n", "truncated"),
])
def test_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "c.h5"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def edit(path, fn, restamp=True):
    """Change a checkpoint with h5py; ``restamp`` then rewrites its header as save_checkpoint would,
    so the structural checks behind the header are reached (a file from another writer)."""
    with h5py.File(path, "r+") as f:
        fn(f)
    if restamp:
        checkpoint._stamp_header(str(path))


@pytest.mark.parametrize("change, match", [
    (lambda f: f.attrs.__setitem__("format", "golden-vectors"), "format attribute is 'golden-vectors'"),
    (lambda f: f.attrs.__delitem__("format"), "format attribute is None"),
    (lambda f: f.attrs.__setitem__("format_version", np.int64(FORMAT_VERSION + 1)), "format version 2"),
    (lambda f: f.attrs.__setitem__("format_version", "1"), "format version '1'"),
    (lambda f: f.__delitem__("scheduler"), "group '/scheduler' is missing"),
    (lambda f: f.__delitem__("model"), "group '/model' is missing"),
    (lambda f: f.attrs.__delitem__("rng_state"), "'rng_state' is missing"),
    (lambda f: f["optimizer/state/0"].__delitem__("exp_avg"), "lists keys"),
    (lambda f: f["model/conv.bias"].attrs.__setitem__("kind", "pickle"), "kind 'pickle'"),
    (lambda f: f["model/conv.bias"].attrs.__setitem__("kind", "str"), "kind 'str' has dtype float32"),
    (lambda f: f["extra/history"].attrs.__setitem__("length", np.int64(5)), "items 0..4"),
    (lambda f: f["extra"].attrs.__setitem__("kind", "array"), "is a group"),
])
def test_wrong_format_version_or_structure_is_refused(tmp_path, change, match):
    path = tmp_path / "c.h5"
    save_checkpoint(path, **training_parts())
    edit(path, change)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


@pytest.mark.parametrize("change", [
    lambda f: f["model/conv.weight"].__setitem__((0, 0, 0, 0), 1e9),
    lambda f: f.attrs.__setitem__("epoch", np.int64(3)),
    lambda f: f.attrs.__setitem__("config", json.dumps({"T": 8})),
])
def test_a_changed_byte_without_a_new_header_is_corrupt(tmp_path, change):
    path = tmp_path / "c.h5"
    save_checkpoint(path, **training_parts())
    edit(path, change, restamp=False)
    with pytest.raises(CheckpointError, match="is corrupt: (its bytes do not match the SHA-256|.* bytes, its header says)"):
        load_checkpoint(path)


def test_header_version_and_foreign_hdf5_files_are_refused(tmp_path):
    path = tmp_path / "c.h5"
    save_checkpoint(path, model_state={"w": np.ones(2)})
    content = path.read_bytes()
    assert content.startswith(b"hdlif-checkpoint\nformat_version 1\nbytes ")
    path.write_bytes(content.replace(b"format_version 1", b"format_version 7", 1))
    with pytest.raises(CheckpointError, match="format version 7; .* reads version 1"):
        load_checkpoint(path)
    path.write_bytes(content.replace(b"bytes ", b"bytez ", 1))
    with pytest.raises(CheckpointError, match="header is unreadable"):
        load_checkpoint(path)
    with h5py.File(tmp_path / "other.h5", "w") as f:  # a valid HDF5 file of another kind
        f["model/w"] = np.ones(2)
    with pytest.raises(CheckpointError, match="another kind of HDF5 file"):
        load_checkpoint(tmp_path / "other.h5")


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.h5"
    parts = training_parts()
    save_checkpoint(path, **parts)
    return path.read_bytes(), parts


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_files_give_the_documented_error(good_file, tmp_path, data):
    content, _ = good_file
    length = data.draw(st.integers(0, len(content) - 1), label="length")
    path = tmp_path / "t.h5"
    path.write_bytes(content[:length])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_give_the_documented_error_or_the_exact_content(good_file, tmp_path, data):
    content, parts = good_file
    damaged = bytearray(content)
    for _ in range(data.draw(st.integers(1, 3), label="flips")):
        where = data.draw(st.integers(0, len(content) - 1), label="offset")
        damaged[where] ^= data.draw(st.integers(1, 255), label="mask")
    path = tmp_path / "f.h5"
    path.write_bytes(bytes(damaged))
    try:
        loaded = load_checkpoint(path)
    except CheckpointError:
        return
    assert_same(loaded, parts)  # the flips hit bytes HDF5 never reads: nothing may differ


# --------------------------------------------------------------------------- atomic writes
def test_a_failed_rename_leaves_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.h5"
    old = training_parts(seed=1)
    save_checkpoint(path, **old)
    before = path.read_bytes()

    def fail(src, dst):
        assert os.path.exists(src) and os.path.dirname(os.path.abspath(src)) == str(tmp_path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(FileWriteError, match="No space left.*previous file is unchanged"):
        save_checkpoint(path, **training_parts(seed=2))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["last.h5"]
    assert path.read_bytes() == before
    assert_same(load_checkpoint(path), old)


def test_an_interrupted_write_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.h5"
    save_checkpoint(path, model_state={"w": np.ones(3)})
    before = path.read_bytes()

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model_state={"w": np.zeros(3)})
    monkeypatch.undo()
    with pytest.raises(TypeError, match="object"):  # refused part: also no temp file, old file intact
        save_checkpoint(path, model_state={"w": object()})
    assert os.listdir(tmp_path) == ["last.h5"] and path.read_bytes() == before


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "last.h5"
    save_checkpoint(path, model_state={"w": np.ones(3)}, epoch=1)
    save_checkpoint(path, model_state={"w": np.zeros(2)}, epoch=2)
    parts = load_checkpoint(path)
    assert parts["epoch"] == 2
    np.testing.assert_array_equal(parts["model_state"]["w"], np.zeros(2))
    assert os.listdir(tmp_path) == ["last.h5"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(model_state={}, epoch=-1), ValueError, "epoch"),
    (dict(model_state={}, step=1.5), ValueError, "step"),
    (dict(model_state={}, best_metric="high"), ValueError, "best_metric"),
    (dict(model_state=[np.ones(2)]), TypeError, "model_state"),
    (dict(model_state={"a/b": np.ones(2)}), ValueError, "'a/b'"),
    (dict(model_state={1.5: np.ones(2)}), TypeError, "key"),
    (dict(model_state={"s": np.array(["x"])}), TypeError, "dtype"),
    (dict(model_state={}, config={"f": open}), TypeError, "config"),
    (dict(model_state={}, wrong=1), TypeError, "wrong"),
])
def test_bad_parts_are_refused_before_writing(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "c.h5", **kwargs)
    assert os.listdir(tmp_path) == []
