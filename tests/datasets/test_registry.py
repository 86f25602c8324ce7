"""The registry API other issues call, the data root, and the package's import hygiene."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import hdlif_ref.datasets as datasets
from hdlif_ref.datasets import DATASETS, dataset_options, get_dataset

REQUIRED = ["digits", "event-digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "cifar10-dvs"]


def test_required_names_are_registered():
    assert set(REQUIRED) <= set(DATASETS)


def test_unknown_name_split_and_option_list_what_is_allowed():
    with pytest.raises(ValueError, match="allowed: digits, event-digits, cifar10"):
        get_dataset("imagenet", "train")
    with pytest.raises(ValueError, match="'train', 'test'|train, test"):
        get_dataset("digits", "validation")
    with pytest.raises(TypeError, match="upsample"):
        get_dataset("digits", "train", upsampling=True)
    assert "T" in dataset_options("event-digits") and "label" in dataset_options("cifar100")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist", "cifar10-dvs"])
def test_file_datasets_without_files_name_the_directory(tmp_path, name):
    with pytest.raises(FileNotFoundError) as info:
        get_dataset(name, "train", tmp_path)
    assert str(tmp_path) in str(info.value) and "docs/datasets.md" in str(info.value)


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HDLIF_REF_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        get_dataset("mnist", "test")


@pytest.mark.parametrize("name, kind, shape", [("digits", "static", (1, 8, 8)),
                                               ("event-digits", "events", (8, 2, 16, 16))])
def test_embedded_datasets_expose_the_documented_interface(name, kind, shape):
    pytest.importorskip("sklearn")
    ds = get_dataset(name, "test")
    assert ds.kind == kind and ds.num_classes == 10 and len(ds) == ds.targets.shape[0]
    assert ds.data.dtype == np.float32 and ds.data.shape[1:] == shape and ds.targets.dtype == np.int64
    assert ds.describe().startswith(f"{name}/test: {len(ds)} {kind} samples")


def test_array_dataset_checks_its_arrays():
    with pytest.raises(TypeError, match="float32"):
        datasets.ArrayDataset(np.zeros((2, 1, 2, 2)), np.zeros(2, np.int64), 2, "static", "x", "train")
    with pytest.raises(ValueError, match="5 dims"):
        datasets.ArrayDataset(np.zeros((2, 1, 2, 2), np.float32), np.zeros(2, np.int64), 2, "events", "x", "train")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        datasets.ArrayDataset(np.zeros((2, 1, 2, 2), np.float32), np.array([0, 2]), 2, "static", "x", "train")


FORBIDDEN = ("autograd", "layers", "neurons", "training", "deploy", "torch", "jax", "tensorflow")
#: Modules of the package root that every floor may use (stdlib, numpy and h5py only): the one
#: safe path for opening and writing files (docs/security.md).
BASEMENT = ("_safe_files",)


def test_datasets_package_imports_no_model_floor():
    """Static check of every import in hdlif_ref/datasets/: plain NumPy, no model code, no DL framework."""
    package = Path(datasets.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                parts = name.lstrip(".").split(".")
                assert not set(parts) & set(FORBIDDEN), f"{source.name} imports {name}"
                if node.__class__ is ast.ImportFrom and node.level > 1 and node.module not in BASEMENT:
                    pytest.fail(f"{source.name} reaches outside the package: {name}")
