"""Every reader against hostile and damaged files (issue 18, item 6; docs/security.md).

For each HDF5 reader (HDF5 event files, checkpoints, frozen models, golden files):

* every way out of the file (``tests/hostile_h5.py``: external links, an external group,
  virtual datasets, external raw storage, dangling and looping soft links, plugin filters),
  placed on a dataset the reader reads, and an external link nobody reads: the documented
  exception, one line naming the object, and *nothing outside the file opened or read*
  (inotify on the outside targets, which hold valid replacements of known content);
* hypothesis over structural damage made with h5py (a dataset with another dtype or shape,
  a dataset or group deleted, an attribute deleted or retyped): the documented exception
  or a successful read, never anything else;
* hypothesis over truncation and byte flips (checkpoints: tests/training/test_checkpoint.py;
  the dataset formats: tests/datasets/test_damaged_files.py).

The non-HDF5 readers (pickle, ``.npz``, AEDAT, IDX, CIFAR binary) have no way to name
another file; the attempts they could be tricked into are checked at the end.

Sealed files (checkpoints, frozen models) are re-stamped after every change, as anyone can:
the SHA-256 header is a checksum, not a signature.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdlif_ref.datasets import DatasetFormatError, UnsafePickleError
from hdlif_ref.datasets._safe_pickle import restricted_loads
from hdlif_ref.datasets.event_files import read_hdf5_events, read_npz_events
from hdlif_ref.deploy.frozen import FrozenModel, Op
from hdlif_ref.deploy.frozen_io import SEALED as FROZEN_SEALED, FrozenModelError, load_frozen, save_frozen
from hdlif_ref.oracle.reader import GoldenFileError, read_golden
from hdlif_ref.training.checkpoint import SEALED as CHECKPOINT_SEALED, CheckpointError, load_checkpoint, save_checkpoint
from tests.hostile_h5 import KNOWN_BYTES, WAYS_OUT, OpenWatch, add_unread_external_link, reach_outside


# ----------------------------------------------------------------------------- the readers
def make_events(path: Path) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["events/t"] = np.sort(rng.integers(0, 10_000, 12))
        f["events/x"] = rng.integers(0, 128, 12)
        f["events/y"] = rng.integers(0, 128, 12)
        f["events/p"] = rng.integers(0, 2, 12)


def make_checkpoint(path: Path) -> None:
    save_checkpoint(path, model_state={"classifier.weight": np.ones((3, 4), np.float32),
                                       "classifier.bias": np.arange(3, dtype=np.float32)},
                    optimizer_state={"lr": 0.1, "state": {0: {"momentum": np.zeros(3)}}}, epoch=2, step=7,
                    config={"model": "digits_net"}, rng_state={"seed": 1})


def make_frozen(path: Path) -> None:
    T = 2
    ops = [Op("flatten"),
           Op("synapse", dict(conv=False, weight_mode="fp32", input_is_spikes=False, input_bits=0),
              dict(weight=np.ones((3, 4), np.float32), scale=np.ones(3, np.float32), bias=np.zeros(3, np.float32))),
           Op("neuron", dict(neuron="hdlif", bits=0, step=0.0, reset=""),
              dict(theta=np.ones((T, 3), np.float32), lam=np.full((T, 3), 0.5, np.float32)))]
    save_frozen(FrozenModel(ops, T, 3, (1, 2, 2), {}), path)


def make_golden(path: Path) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["version"], f.attrs["dtype"] = "hdlif-golden", np.int64(1), "float64"
        g = f.create_group("cases/c")
        g.attrs["kind"], g.attrs["T"] = "hdlif", np.int64(2)
        g["inputs/I"] = rng.standard_normal((2, 3))
        g["inputs/lam"] = np.full(2, 0.5)
        g["inputs/theta"] = np.ones(2)
        g["inputs/grad_s"] = rng.standard_normal((2, 3))
        g["outputs/s"] = np.zeros((2, 3))


@dataclass
class Reader:
    make: Callable[[Path], None]
    read: Callable[[Path], object]
    error: type
    target: str  # a dataset the reader reads
    sealed: object = None  # the Sealed format whose header is re-stamped after a change


READERS = {
    "hdf5-events": Reader(make_events, read_hdf5_events, DatasetFormatError, "events/x"),
    "checkpoint": Reader(make_checkpoint, load_checkpoint, CheckpointError, "model/classifier.bias",
                         CHECKPOINT_SEALED),
    "frozen": Reader(make_frozen, load_frozen, FrozenModelError, "ops/1/arrays/scale", FROZEN_SEALED),
    "golden": Reader(make_golden, lambda p: read_golden(p, isolate=False), GoldenFileError, "cases/c/inputs/I"),
    "golden-isolated": Reader(make_golden, lambda p: read_golden(p, isolate=True), GoldenFileError,
                              "cases/c/inputs/I"),
}


def restamp(reader: Reader, path: Path) -> None:
    if reader.sealed is not None:
        reader.sealed.stamp_header(str(path))


@pytest.mark.parametrize("name", list(READERS))
def test_each_undamaged_file_reads(tmp_path, name):
    reader = READERS[name]
    reader.make(tmp_path / "ok.h5")
    reader.read(tmp_path / "ok.h5")


# ----------------------------------------------------------------------------- ways out of the file
@pytest.mark.parametrize("way", WAYS_OUT)
@pytest.mark.parametrize("name", list(READERS))
def test_no_reader_follows_anything_out_of_its_file(tmp_path, name, way):
    reader = READERS[name]
    path = tmp_path / "evil.h5"
    reader.make(path)
    watched = reach_outside(path, reader.target, way)
    restamp(reader, path)
    with OpenWatch(watched) as watch:
        with pytest.raises(reader.error) as info:
            reader.read(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    named = {"external_link_group": "/outside is an external link", "soft_loop": "that loops"}.get(way)
    assert (named or f"/{reader.target}") in message, message
    assert "refused" in message and "root:x:0" not in message
    assert watch.events == [], f"{name} opened or read a file outside {path.name}: {watch.events}"


@pytest.mark.parametrize("name", list(READERS))
def test_an_external_link_no_reader_asks_for_is_refused(tmp_path, name):
    reader = READERS[name]
    path = tmp_path / "evil.h5"
    reader.make(path)
    watched = add_unread_external_link(path)
    restamp(reader, path)
    with OpenWatch(watched) as watch:
        with pytest.raises(reader.error, match="/zz_unread is an external link"):
            reader.read(path)
    assert watch.events == []


# ----------------------------------------------------------------------------- structural damage
def datasets_and_groups(path: Path) -> tuple[list[str], list[str]]:
    datasets, groups = [], []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: (datasets if isinstance(o, h5py.Dataset) else groups).append(n))
    return sorted(datasets), sorted(groups)


MUTATIONS = ("dtype_int8", "dtype_float16", "dtype_text", "add_dim", "drop_rows", "scalar", "delete_dataset",
             "delete_group", "delete_attr", "retype_attr")


def mutate(f: h5py.File, kind: str, dataset: str, group: str, attr_owner: str) -> None:
    if kind.startswith("dtype") or kind in ("add_dim", "drop_rows", "scalar"):
        ds = f[dataset]
        data, attrs = ds[()], dict(ds.attrs)
        del f[dataset]
        arr = np.asarray(data)
        if kind == "dtype_int8":
            new = arr.astype(np.int8) if arr.dtype.kind in "biuf" else np.zeros(arr.shape, np.int8)
        elif kind == "dtype_float16":
            new = arr.astype(np.float16) if arr.dtype.kind in "biuf" else np.zeros(arr.shape, np.float16)
        elif kind == "dtype_text":
            new = "not numbers"
        elif kind == "add_dim":
            new = arr[..., None] if arr.dtype.kind in "biuf" else np.zeros((1, 1))
        elif kind == "drop_rows":
            new = arr[:-1] if arr.ndim else np.zeros(0)
        else:
            new = np.float64(1.0)
        f.create_dataset(dataset, data=new)
        for k, v in attrs.items():
            f[dataset].attrs[k] = v
    elif kind == "delete_dataset":
        del f[dataset]
    elif kind == "delete_group":
        del f[group]
    else:
        owner = f[attr_owner] if attr_owner else f
        keys = list(owner.attrs)
        if keys:
            key = keys[0]
            if kind == "delete_attr":
                del owner.attrs[key]
            else:
                owner.attrs[key] = np.array([1.5, 2.5])


@pytest.mark.parametrize("name", [n for n in READERS if n != "golden-isolated"])
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_structural_damage_gives_the_documented_error_or_a_clean_read(tmp_path, name, data):
    reader = READERS[name]
    path = tmp_path / "damaged.h5"
    reader.make(path)
    datasets, groups = datasets_and_groups(path)
    kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    dataset = data.draw(st.sampled_from(datasets), label="dataset")
    group = data.draw(st.sampled_from(groups), label="group")
    owner = data.draw(st.sampled_from([""] + groups + datasets), label="attribute owner")
    with h5py.File(path, "r+") as f:
        mutate(f, kind, dataset, group, owner)
    restamp(reader, path)
    try:
        reader.read(path)
    except reader.error as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)


# ----------------------------------------------------------------------------- bytes
@pytest.mark.parametrize("name", ["frozen", "golden-isolated"])
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncation_and_byte_flips_give_the_documented_error_or_the_same_content(tmp_path, name, data):
    reader = READERS[name]
    good = tmp_path / "good.h5"
    reader.make(good)
    content = bytearray(good.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        content = content[:data.draw(st.integers(0, len(content) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            content[data.draw(st.integers(0, len(content) - 1), label="offset")] ^= data.draw(st.integers(1, 255))
    path = tmp_path / "damaged.h5"
    path.write_bytes(bytes(content))
    try:
        reader.read(path)
    except reader.error as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)


# ----------------------------------------------------------------------------- the other formats
def test_a_pickle_asking_to_open_a_file_is_refused_and_opens_nothing(tmp_path):
    known = tmp_path / "known.bin"
    known.write_bytes(KNOWN_BYTES)

    class _Reads:
        def __reduce__(self):
            return (open, (str(known), "rb"))

    blob = pickle.dumps({b"labels": [_Reads()]}, protocol=2)
    with OpenWatch([known]) as watch:
        with pytest.raises(UnsafePickleError, match="refusing to load global"):
            restricted_loads(blob, source="evil")
    assert watch.events == []


def test_an_npz_member_that_is_a_symlink_is_not_followed(tmp_path):
    known = tmp_path / "known.bin"
    known.write_bytes(KNOWN_BYTES)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key in "txyp":
            info = zipfile.ZipInfo(f"{key}.npy")
            info.external_attr = (0o120777 << 16)  # a symbolic link, as zip archives can store them
            zf.writestr(info, str(known))
    path = tmp_path / "evil.npz"
    path.write_bytes(buf.getvalue())
    with OpenWatch([known]) as watch:
        with pytest.raises(DatasetFormatError):
            read_npz_events(path)
    assert watch.events == []


def test_the_readers_table_covers_every_hdf5_reader_of_the_package():
    """A new HDF5 reader must be added here: every h5py opening in the package goes through open_h5."""
    root = Path(__file__).resolve().parents[1] / "hdlif_ref"
    offenders = []
    for source in root.rglob("*.py"):
        text = source.read_text()
        if "h5py.File(" in text and source.name != "_safe_files.py":
            offenders.append(str(source.relative_to(root)))
    assert offenders == [], f"h5py.File outside _safe_files.py: {offenders}"
