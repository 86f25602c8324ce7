"""The validation pass on load (training/validate.py, _domains.py): eval, deploy, resume, load_trained, run.

Issue 18, item 4: a re-sealed checkpoint (anyone can re-stamp the SHA-256 header) with a spike
step of -0.1, 0 or NaN, all-NaN classifier weights, int8 weights, a negative running variance or
a negative threshold was accepted by ``eval``/``deploy`` (and ``deploy`` wrote frozen models that
``run`` then refused). Each is now one line naming the tensor, everywhere; ``lam = 2`` stays
accepted (SPEC E1 DC: the leak is not clamped).
"""
from __future__ import annotations

import json
import os
import warnings

import h5py
import numpy as np
import pytest

from hdlif_ref.cli import main
from hdlif_ref.deploy.convert import freeze
from hdlif_ref.deploy.frozen_io import SEALED as FROZEN, FrozenModelError, load_frozen, save_frozen
from hdlif_ref.training import CheckpointError, load_checkpoint, save_checkpoint
from hdlif_ref.training.config import resolve_config
from hdlif_ref.training.run import Run, load_trained, run_training
from hdlif_ref.training.validate import validate_finite_tree, validate_state

TINY = dict(train_fraction=0.15, width=0.5, batch_size=32, epochs=2, eval_batch_size=512)


def quiet(_):
    pass


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """An untrained run's checkpoint (the default network: Mem-BN, ternary, 4-bit spikes)."""
    directory = tmp_path_factory.mktemp("good")
    run = Run(resolve_config(dict(TINY)))
    run.save(str(directory / "last.h5"))
    return directory / "last.h5", run


def name_ending(state: dict, suffix: str) -> str:
    return next(k for k in state if k.endswith(suffix))


def poisoned(good_path, tmp_path, suffix: str, change) -> tuple:
    parts = load_checkpoint(good_path)
    name = name_ending(parts["model_state"], suffix)
    parts["model_state"][name] = change(parts["model_state"][name])
    path = tmp_path / "poisoned.h5"
    save_checkpoint(path, **parts)  # re-sealed: the header checks out
    return path, name


def nan_all(a):
    return np.full_like(a, np.nan)


def set_first(value):
    def change(a):
        a = a.copy()
        a.reshape(-1)[0] = value
        return a
    return change


BAD = [
    ("quantizer.step", lambda a: np.asarray(-0.1, dtype=a.dtype), "must be finite and > 0 (the spike-quantizer step"),
    ("quantizer.step", lambda a: np.zeros_like(a), "= 0 must be finite and > 0"),
    ("quantizer.step", lambda a: np.full_like(a, np.nan), "= nan must be finite and > 0"),
    ("classifier.weight", nan_all, "non-finite values of"),
    ("classifier.weight", lambda a: np.sign(a).astype(np.int8), "has dtype int8; a floating parameter"),
    ("features.1.running_var", set_first(-0.5), "must be finite and >= 0 (a running variance)"),
    ("theta", set_first(-1.0), "must be finite and > 0 (the neuron threshold theta"),
    ("lam", set_first(np.inf), "non-finite value of"),
    ("alpha", set_first(np.nan), "non-finite value of"),
]


@pytest.mark.parametrize("suffix, change, message", BAD)
def test_load_trained_refuses_out_of_domain_tensors_naming_them(good, tmp_path, suffix, change, message):
    path, name = poisoned(good[0], tmp_path, suffix, change)
    with pytest.raises(CheckpointError) as info:
        load_trained(str(path))
    text = str(info.value)
    assert message in text and name in text and repr(str(path)) in text and len(text.splitlines()) == 1


def test_a_leak_of_two_is_in_its_domain(good, tmp_path):
    path, name = poisoned(good[0], tmp_path, "lam", lambda a: np.full_like(a, 2.0))
    _, _, model = load_trained(str(path))
    assert (model.state_dict()[name] == 2.0).all()


@pytest.mark.parametrize("command", ["eval", "deploy"])
@pytest.mark.parametrize("suffix, change, message", [BAD[0], BAD[3], BAD[5]])
def test_eval_and_deploy_refuse_in_one_line_and_deploy_writes_nothing(good, tmp_path, capsys, command, suffix,
                                                                     change, message):
    path, name = poisoned(good[0], tmp_path, suffix, change)
    out = tmp_path / "frozen.h5"
    argv = [command, str(path)] + ([str(out)] if command == "deploy" else [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw RuntimeWarning (sqrt of a negative variance) either
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and name in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["poisoned.h5"]


def test_resume_refuses_a_poisoned_last_checkpoint(good, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path, name = poisoned(good[0], tmp_path, "quantizer.step", lambda a: np.asarray(-0.1, dtype=a.dtype))
    os.replace(path, run_dir / "last.h5")
    with pytest.raises(CheckpointError, match=rf"tensor {name} = -0.1 must be finite and > 0"):
        run_training(None, str(run_dir), resume=True, log=quiet)


def test_resume_refuses_non_finite_optimizer_state(good, tmp_path):
    parts = load_checkpoint(good[0])
    parts["optimizer_state"] = {"state": {0: {"momentum_buffer": np.array([1.0, np.nan])}}}
    with pytest.raises(CheckpointError, match=r"the optimizer state\['state'\]\[0\]\['momentum_buffer'\] holds "
                                              r"non-finite"):
        validate_finite_tree(parts["optimizer_state"], "the optimizer state", "checkpoint 'x'")


def test_validate_state_names_missing_unexpected_and_misshapen_tensors(good):
    _, run = good
    state = {k: v.copy() for k, v in run.model.state_dict().items()}
    name = next(iter(state))
    with pytest.raises(CheckpointError, match=rf"missing tensors {name}"):
        validate_state(run.model, {k: v for k, v in state.items() if k != name}, "checkpoint 'x'")
    with pytest.raises(CheckpointError, match="unexpected tensors extra"):
        validate_state(run.model, dict(state, extra=np.ones(1)), "checkpoint 'x'")
    with pytest.raises(CheckpointError, match=rf"tensor {name} has shape \(1,\), the network's is"):
        validate_state(run.model, dict(state, **{name: np.ones(1, dtype=np.float32)}), "checkpoint 'x'")
    with pytest.raises(CheckpointError, match=rf"tensor {name} is a float, expected an array"):
        validate_state(run.model, dict(state, **{name: 1.0}), "checkpoint 'x'")
    validate_state(run.model, {k: v.astype(np.float64) for k, v in state.items()}, "checkpoint 'x'")  # float64 ok


# ----------------------------------------------------------------------------- frozen models
@pytest.fixture(scope="module")
def frozen_file(good, tmp_path_factory):
    _, run = good
    path = tmp_path_factory.mktemp("frozen") / "model.h5"
    save_frozen(freeze(run.model, (1, 8, 8)), path)
    return path


def first_op(f, kind):
    def walk(group):
        for key in sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else k):
            node = group[key]
            if isinstance(node, h5py.Group):
                if "kind" in node and node["kind"][()] in (kind, kind.encode()):
                    return node
                found = walk(node)
                if found is not None:
                    return found
        return None
    return walk(f["ops"])


def tamper(src, dst, change):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        change(f)
    FROZEN.stamp_header(str(dst))  # anyone can re-stamp


def set_array(kind, name, value):
    def change(f):
        ds = first_op(f, kind)["arrays"][name]
        a = ds[()]
        a.reshape(-1)[0] = value
        ds[...] = a
    return change


def set_step(value):
    def change(f):
        op = first_op(f, "neuron")
        attrs = json.loads(op["attrs"][()])
        attrs["step"] = value
        del op["attrs"]
        op.create_dataset("attrs", data=json.dumps(attrs)).attrs["kind"] = "str"
    return change


@pytest.mark.parametrize("change, message", [
    (set_array("neuron", "theta", -1.0), "array theta holds 1 out-of-domain value"),
    (set_array("neuron", "lam", np.nan), "array lam holds 1 non-finite value"),
    (set_array("synapse", "scale", np.inf), "array scale holds 1 non-finite value"),
    (set_step(-0.1), "spike step = -0.1 must be finite and > 0"),
    (set_step(float("nan")), "spike step = nan must be finite and > 0"),
])
def test_load_frozen_applies_the_same_domains(frozen_file, tmp_path, change, message):
    bad = tmp_path / "bad.h5"
    tamper(frozen_file, bad, change)
    with pytest.raises(FrozenModelError, match=message):
        load_frozen(bad)


def test_a_lam_of_two_in_a_frozen_model_loads(frozen_file, tmp_path):
    ok = tmp_path / "ok.h5"
    tamper(frozen_file, ok, set_array("neuron", "lam", 2.0))
    load_frozen(ok)


def test_save_frozen_refuses_what_load_frozen_would_refuse(good, tmp_path):
    _, run = good
    frozen = freeze(run.model, (1, 8, 8))
    neuron = next(op for op in frozen.ops if op.kind == "neuron")
    neuron.attrs["step"] = -0.1
    with pytest.raises(FrozenModelError, match="cannot write frozen model .* it would not load: .*spike step = -0.1"):
        save_frozen(frozen, tmp_path / "f.h5")
    assert os.listdir(tmp_path) == []
