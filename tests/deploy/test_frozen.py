"""Frozen deployment: equal to the trained network in eval mode, file round trip, damaged files."""
import json

import h5py
import numpy as np
import pytest

from hdlif_ref.autograd import Tensor, no_grad
from hdlif_ref.cli import main
from hdlif_ref.datasets import DataLoader, get_dataset
from hdlif_ref.deploy.convert import freeze
from hdlif_ref.deploy.frozen_io import SEALED, FrozenModelError, load_frozen, save_frozen
from hdlif_ref.models import digits_net, spiking_resnet
from hdlif_ref.neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF
from hdlif_ref.training import Adam, param_groups
from hdlif_ref.training.trainer import OnlineTrainer


def eval_logits(model, x):
    """The trained network in eval mode, multi-step: what ``hdlif-ref eval`` computes."""
    model.eval().set_step_mode("m").reset_state()
    seq = np.ascontiguousarray(np.broadcast_to(x, (model.T,) + x.shape)) if x.ndim == 4 else x
    with no_grad():
        out = model(Tensor(seq)).data
    model.set_step_mode("s").train()
    return out


def last_layer_fires(model, x):
    neurons = [m for m in model.modules() if isinstance(m, (HDLIF, LIF, ParallelHDLIF, MemBNHDLIF))]
    neurons[-1].track_firing = True
    neurons[-1].reset_firing()
    eval_logits(model, x)
    nonzero, total = neurons[-1].firing_counts
    neurons[-1].track_firing = False
    return nonzero / total


@pytest.fixture(scope="module")
def digits():
    return get_dataset("digits", "train", train_fraction=0.5), get_dataset("digits", "test").data[:160]


def lower_thresholds(model, theta=0.3):
    """Half an epoch leaves eval-mode BN statistics rough and deep layers nearly silent; a lower
    threshold keeps every layer firing so that the comparison exercises every op (any parameter
    values must deploy exactly, trained or not)."""
    for name, p in model.named_parameters():
        if name.endswith("theta"):
            p.data[...] = theta
    for m in model.modules():  # and the n-bit spike steps with it (DC: theta / (2^n - 1))
        if getattr(m, "quantizer", None) is not None:
            m.quantizer.step.data[...] = theta / (2 ** m.spike_bits - 1)


CONFIGS = [
    dict(neuron="membn", weight_mode="ternary", spike_bits=4, parallel_fraction=0.5),
    dict(neuron="hdlif", weight_mode="binary", seca="II"),
    dict(neuron="lif", weight_mode="fp32"),
    dict(neuron="membn", weight_mode="ternary", spike_bits=2, seca="I", per_channel=True),
]


def assert_deployment_matches(model, x, tmp_path, input_shape=None):
    """float32 through the file (what deploy/run do), then float64 in memory.

    float32: predictions equal; logits within 1e-5 relative for at least 98% of the
    samples. Folding BN and spike steps into synapse scales rounds differently, so a
    membrane value within float32 rounding of a threshold or of a spike level can land
    on the other side (docs/deploy.md); float64 shows the folds themselves are exact
    to rounding: 1e-9 relative everywhere.
    """
    reference = eval_logits(model, x)
    save_frozen(freeze(model, input_shape), tmp_path / "m.h5")
    logits = load_frozen(tmp_path / "m.h5").run(x)
    np.testing.assert_array_equal(logits.mean(0).argmax(1), reference.mean(0).argmax(1))
    per_sample = np.abs(logits - reference).max(axis=(0, 2)) / np.abs(reference).max()
    assert np.mean(per_sample <= 1e-5) >= 0.98, np.sort(per_sample)[-5:]
    model.to(np.float64)
    x64 = x.astype(np.float64)
    reference = eval_logits(model, x64)
    logits = freeze(model, input_shape, dtype=np.float64).run(x64)
    assert np.max(np.abs(logits - reference)) <= 1e-9 * np.max(np.abs(reference))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_frozen_model_equals_the_trained_network(config, digits, tmp_path):
    train, x = digits
    model = digits_net(T=4, width=0.5, rng=np.random.default_rng(0), **config)
    trainer = OnlineTrainer(model, Adam(param_groups(model, 0.0), lr=3e-3), steps=1, rng=np.random.default_rng(1))
    trainer.train_epoch(DataLoader(train, 64, shuffle=True, seed=0))
    lower_thresholds(model)
    assert last_layer_fires(model, x) > 0.01  # a live network, so the comparison means something
    assert_deployment_matches(model, x, tmp_path)


def test_residual_blocks_identity_shortcuts_and_spike_steps_fold_correctly(tmp_path):
    model = spiking_resnet(18, width=0.125, num_classes=5, T=3, spike_bits=3, weight_mode="ternary",
                           neuron="membn", parallel_fraction=0.5, rng=np.random.default_rng(2))
    x = np.random.default_rng(3).standard_normal((6, 3, 16, 16)).astype(np.float32)
    for bn in [m for m in model.modules() if type(m).__name__.startswith("BatchNorm")]:
        bn.running_mean[...] = np.random.default_rng(4).normal(0, 0.2, bn.running_mean.shape)  # non-trivial folds
    lower_thresholds(model)
    assert last_layer_fires(model, x) > 0.01
    frozen = freeze(model, (3, 16, 16))
    assert any(op.kind == "block" and any(o.kind == "scale" for o in op.children["shortcut"]) for op in frozen.ops)
    assert_deployment_matches(model, x, tmp_path, (3, 16, 16))


def test_file_stores_ternary_codes_at_two_bits_and_reports_the_payload(tmp_path):
    model = digits_net(T=2, weight_mode="ternary", rng=np.random.default_rng(0))
    frozen = freeze(model)
    save_frozen(frozen, tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f.attrs["format"] == "hdlif-frozen"
        codes = f["ops/2/arrays/weight_codes"][()]  # the second conv (the first is float32; BN folded)
        assert codes.dtype == np.uint8 and codes.size == (32 * 16 * 9 + 3) // 4
    conv2 = [m for m in model.modules() if type(m).__name__ == "Conv2d"][1]
    weights = sum(p.size for p in model.parameters())
    assert load_frozen(tmp_path / "m.h5").payload_bytes() == frozen.payload_bytes()
    assert frozen.payload_bytes() < weights * 4 - conv2.weight.size * 3  # codes far below float32
    again = load_frozen(tmp_path / "m.h5")
    x = np.random.default_rng(1).standard_normal((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(again.run(x), frozen.run(x))


def restamp(path, change):
    """Change a file with h5py, then rewrite its checksum header (as another writer would)."""
    with h5py.File(path, "r+") as f:
        change(f)
    SEALED.stamp_header(str(path))


def _set_attrs(f, op, **updates):
    """Rewrite one op's JSON attrs in place."""
    attrs = json.loads(f[f"ops/{op}/attrs"][()])
    attrs.update(updates)
    f[f"ops/{op}/attrs"][()] = json.dumps(attrs)


@pytest.mark.parametrize("change, message", [
    (lambda f: _set_attrs(f, 4, kernel=[2]), r"avg_pool setting 'kernel' is \[2\]; expected a pair"),
    (lambda f: _set_attrs(f, 1, neuron="lif", reset="sofft"), r"LIF reset 'sofft'; allowed: hard, soft"),
    (lambda f: f["ops/0/arrays"].__delitem__("weight"), r"/ops/0/arrays lists keys \['weight', 'scale', 'bias'\] but holds"),
    (lambda f: f.attrs.__setitem__("format", "hdlif-checkpoint"), "format attribute is 'hdlif-checkpoint'"),
    (lambda f: f.attrs.__delitem__("T"), "root attribute 'T' is missing"),
    (lambda f: f["ops/0/kind"].__setitem__((), "teleport"), "unknown op kind 'teleport'"),
])
def test_damaged_files_give_the_documented_error(tmp_path, change, message):
    path = tmp_path / "m.h5"
    save_frozen(freeze(digits_net(T=2, rng=np.random.default_rng(0))), path)
    restamp(path, change)
    with pytest.raises(FrozenModelError, match=message):
        load_frozen(path)


def test_wrong_shapes_and_dtypes_are_refused(tmp_path):
    path = tmp_path / "m.h5"
    save_frozen(freeze(digits_net(T=2, rng=np.random.default_rng(0))), path)

    def wrong_scale(f):
        del f["ops/0/arrays/scale"]
        ds = f["ops/0/arrays"].create_dataset("scale", data=np.ones(7, np.float32))
        ds.attrs["kind"] = "array"
    restamp(path, wrong_scale)
    with pytest.raises(FrozenModelError, match=r"array 'scale' has shape \(7,\)"):
        load_frozen(path)
    save_frozen(freeze(digits_net(T=2, rng=np.random.default_rng(0))), path)

    def wrong_dtype(f):
        data = f["ops/1/arrays/lam"][()]
        del f["ops/1/arrays/lam"]
        ds = f["ops/1/arrays"].create_dataset("lam", data=data.astype(np.float64))
        ds.attrs["kind"] = "array"
    restamp(path, wrong_dtype)
    with pytest.raises(FrozenModelError, match="array 'lam' is float64"):
        load_frozen(path)


def test_truncated_file_is_refused_before_hdf5_reads_it(tmp_path):
    path = tmp_path / "m.h5"
    save_frozen(freeze(digits_net(T=2, rng=np.random.default_rng(0))), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrozenModelError, match="truncated"):
        load_frozen(path)


def test_deploy_and_run_commands(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--train-fraction", "0.2", "--width", "0.5", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["deploy", str(tmp_path / "run" / "last.h5"), str(tmp_path / "m.h5")]) == 0
    assert "parameter payload" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "m.h5"), "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "SOPs per sample" in out and "energy per sample" in out
    (tmp_path / "bad.h5").write_bytes(b"garbage" * 100)
    assert main(["run", str(tmp_path / "bad.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not an HDF5 file" in err


def test_run_accuracy_equals_eval_accuracy(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--train-fraction", "0.4", "--quiet", "--out", str(tmp_path / "r")]) == 0
    assert main(["eval", str(tmp_path / "r" / "best.h5")]) == 0
    eval_out = capsys.readouterr().out
    assert main(["deploy", str(tmp_path / "r" / "best.h5"), str(tmp_path / "m.h5")]) == 0
    assert main(["run", str(tmp_path / "m.h5")]) == 0
    run_out = capsys.readouterr().out
    pick = lambda text: [line.split()[-1] for line in text.splitlines() if line.startswith("accuracy ")][0]  # noqa
    assert pick(eval_out) == pick(run_out)


def test_seca_and_tap_ops_are_checked_when_loading(tmp_path):
    path = tmp_path / "m.h5"
    save_frozen(freeze(digits_net(T=2, seca="II", rng=np.random.default_rng(0))), path)
    kinds = [load_frozen(path).ops[i].kind for i in range(6)]
    seca2 = kinds.index("seca2")
    restamp(path, lambda f: _set_attrs(f, seca2, tap=99))
    with pytest.raises(FrozenModelError, match="reads tap 99, which no earlier tap op defines"):
        load_frozen(path)
    save_frozen(freeze(digits_net(T=2, seca="I", rng=np.random.default_rng(0))), path)

    def even_kernel(f):
        del f["ops/1/arrays/weight"]
        ds = f["ops/1/arrays"].create_dataset("weight", data=np.ones(4, np.float32))
        ds.attrs["kind"] = "array"
    restamp(path, even_kernel)
    with pytest.raises(FrozenModelError, match="has 4 taps; SECA kernels have an odd size"):
        load_frozen(path)


def test_the_frozen_runner_does_not_import_autograd():
    import subprocess
    import sys
    code = ("import sys, hdlif_ref.deploy.frozen_io; "
            "print([m for m in sys.modules if m.startswith(('hdlif_ref.autograd', 'hdlif_ref.layers', "
            "'hdlif_ref.neurons', 'hdlif_ref.training'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_reads_the_same_test_split_as_eval_with_noise_and_upsampling(tmp_path, capsys):
    flags = ["--epochs", "1", "--train-fraction", "0.3", "--noise", "0.5", "--upsample", "--seed", "3", "--quiet"]
    assert main(["train", *flags, "--out", str(tmp_path / "r")]) == 0
    assert main(["eval", str(tmp_path / "r" / "last.h5")]) == 0
    eval_out = capsys.readouterr().out
    assert main(["deploy", str(tmp_path / "r" / "last.h5"), str(tmp_path / "m.h5")]) == 0
    assert main(["run", str(tmp_path / "m.h5")]) == 0
    run_out = capsys.readouterr().out
    pick = lambda text: [line.split()[-1] for line in text.splitlines() if line.startswith("accuracy ")][0]  # noqa
    assert pick(eval_out) == pick(run_out)
    assert main(["run", str(tmp_path / "m.h5"), "--limit", "0"]) == 2
    assert "--limit=0 must be >= 1" in capsys.readouterr().err


def calibrate_batch_norms(model, x):
    """Set every running statistic to the batch statistics of ``x`` (one train-mode pass, momentum 1):
    an untrained network in eval mode is otherwise silent past its first layers."""
    norms = [m for m in model.modules() if hasattr(m, "momentum")]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    model.train().set_step_mode("m").reset_state()
    seq = np.ascontiguousarray(np.broadcast_to(x, (model.T,) + x.shape))
    with no_grad():
        model(Tensor(seq))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.set_step_mode("s").reset_state()


@pytest.mark.parametrize("build", [
    lambda: spiking_resnet(18, width=0.125, num_classes=4, T=2, neuron="hdlif", seca="II", spike_bits=3,
                           weight_mode="binary", rng=np.random.default_rng(5)),
    lambda: spiking_resnet(18, width=0.125, num_classes=4, T=2, neuron="lif", spike_bits=2,
                           rng=np.random.default_rng(6)),
    lambda: spiking_resnet(34, stem="imagenet", width=0.0625, num_classes=4, T=2, neuron="membn", per_channel=True,
                           spike_bits=3, rng=np.random.default_rng(7)),
    lambda: digits_net(T=3, neuron="membn", seca="II", spike_bits=3, parallel_fraction=0.5, per_channel=True,
                       rng=np.random.default_rng(8)),
], ids=["resnet-secaII-binary", "resnet-lif-2bit", "resnet34-imagenet-membn", "digits-membn-secaII-parallel"])
def test_more_configurations_fold_exactly_in_float64(build):
    """Configurations the trained-network tests do not cover, compared in float64 only (exact folds)."""
    model = build()
    lower_thresholds(model)
    size = 32 if model.config.get("stem") == "imagenet" else (8 if model.config["builder"] == "digits_net" else 16)
    x = np.random.default_rng(9).standard_normal((4, model.config["in_channels"], size, size))
    model.to(np.float64)
    calibrate_batch_norms(model, x)
    assert last_layer_fires(model, x) > 0.01
    reference = eval_logits(model, x)
    logits = freeze(model, x.shape[1:], dtype=np.float64).run(x)
    assert np.max(np.abs(logits - reference)) <= 1e-9 * np.max(np.abs(reference))


def test_predict_is_the_argmax_of_the_mean_over_steps_not_the_last_step():
    """SPEC E16: ``argmax_c mean_t o_t``. A frozen model with no ops returns its frames as logits; here the
    last step of sample 0 points at class 1 while the mean points at class 0 (and sample 1 the other way)."""
    from hdlif_ref.deploy.frozen import FrozenModel

    model = FrozenModel([], T=3, num_classes=3, input_shape=(3,), meta={}, dtype=np.float64)
    frames = np.array([[[5.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                       [[5.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                       [[0.0, 1.0, 0.0], [0.0, 0.0, 1.5]]])  # [T, N, classes]
    np.testing.assert_array_equal(model.predict(frames), [0, 1])
    assert frames[-1].argmax(axis=1).tolist() == [1, 2]  # what a last-step predict would say
