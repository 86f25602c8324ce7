"""Training never goes wrong silently: NaN/Inf stop it by name, or skip the batch when asked.

v0.1: ``--optimizer sgd --lr 100`` printed raw numpy warnings and wrote a report over
25,302 non-finite values with exit code 0; ``hdlif_seq`` fed an all-NaN input returned
finite outputs and no spikes (NaN fails every comparison with theta).
"""
import numpy as np
import pytest

from hdlif_ref.autograd import Tensor
from hdlif_ref.cli import main
from hdlif_ref.layers import AvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d
from hdlif_ref.models import digits_net
from hdlif_ref.neurons import (HDLIF, LIF, MemBNHDLIF, ParallelHDLIF, hdlif_seq, hdlif_step, lif_seq,
                               membn_hdlif_seq, parallel_hdlif_seq, spike_quantize)
from hdlif_ref.neurons.records import HDLIFParams, NeuronState
from hdlif_ref.training import load_checkpoint
from hdlif_ref.training.optim import SGD
from hdlif_ref.training.trainer import NonFiniteError, OnlineTrainer, STBPTrainer

T, N, C = 3, 2, 4
f32 = np.float32


def _nan_at(shape, index):
    x = np.zeros(shape, dtype=f32)
    x[index] = np.nan
    return x


def test_neuron_functions_refuse_non_finite_input_by_name():
    I = _nan_at((T, N, C), (1, 0, 2))
    lam, theta = np.full(T, 0.5, f32), np.ones(T, f32)
    ones, zeros = np.ones(T, f32), np.zeros(T, f32)
    calls = [lambda: hdlif_seq(I, lam, theta), lambda: lif_seq(I, lam, theta), lambda: parallel_hdlif_seq(I, theta),
             lambda: membn_hdlif_seq(I, lam, theta, ones, zeros, np.ones((T, C), f32), np.zeros((T, C), f32),
                                     np.zeros((T, C), f32), np.ones((T, C), f32))]
    for call in calls:
        with pytest.raises(ValueError, match=r"I holds 1 non-finite value\(s\).*index \(1, 0, 2\)"):
            call()
    with pytest.raises(ValueError, match="I_t holds 1 non-finite"):
        hdlif_step(Tensor(_nan_at((N, C), (0, 0))), NeuronState(), HDLIFParams(Tensor(lam), Tensor(theta)))
    with pytest.raises(ValueError, match="theta holds 1 non-finite"):
        hdlif_seq(np.zeros((T, N, C), f32), lam, np.array([1, np.inf, 1], f32))
    with pytest.raises(ValueError, match="spike_quantize: x holds"):
        spike_quantize(Tensor(_nan_at((N, C), (1, 1))), Tensor(np.array(0.1, f32)), 4)


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2d(2, 3, 3, padding=1), (N, 2, 4, 4)), (lambda: Linear(4, 3), (N, 4)),
    (lambda: BatchNorm2d(2), (N, 2, 4, 4)), (lambda: AvgPool2d(2), (N, 2, 4, 4)), (lambda: MaxPool2d(2), (N, 2, 4, 4)),
    (lambda: HDLIF(T), (N, 2)), (lambda: LIF(T), (N, 2)), (lambda: ParallelHDLIF(T), (N, 2)),
    (lambda: MemBNHDLIF(T, 2), (N, 2, 3))])
@pytest.mark.parametrize("mode", ["s", "m"])
def test_every_layer_refuses_non_finite_input(make, shape, mode):
    layer = make().set_step_mode(mode)
    full = shape if mode == "s" else (T,) + shape
    x = np.ones(full, dtype=f32)
    x.flat[-1] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value\(s\) \(NaN or Inf\).*inf"):
        layer(Tensor(x))


def _batches(count=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((size, 1, 8, 8), dtype=f32), rng.integers(0, 10, size)) for _ in range(count)]


@pytest.mark.parametrize("trainer_cls", [OnlineTrainer, STBPTrainer])
def test_huge_learning_rate_stops_with_one_line_naming_batch_layer_and_parameter(trainer_cls):
    model = digits_net(T=2, width=0.5, neuron="hdlif", rng=np.random.default_rng(0))
    trainer = trainer_cls(model, SGD(list(model.parameters()), lr=1e30))
    with pytest.raises(NonFiniteError) as info, np.errstate(all="ignore"):
        for _ in range(5):
            trainer.train_epoch(_batches())
    text = str(info.value)
    assert "\n" not in text and text.startswith("non-finite ") and "batch " in text and "lr=1e+30" in text
    if info.value.name is not None:
        layer, _, param = info.value.name.rpartition(".")
        assert f"{param!r} of layer {layer!r}" in text


def test_non_finite_gradient_names_the_parameter_and_skip_batch_drops_the_batch():
    model = digits_net(T=2, width=0.5, neuron="hdlif", rng=np.random.default_rng(0))
    poisoned = model.classifier.weight
    original = OnlineTrainer._optimizer_step

    def poison_then_step(self):
        poisoned.grad[0, 0] = np.nan
        original(self)

    for mode, expect_raise in (("stop", True), ("skip-batch", False)):
        trainer = OnlineTrainer(model, SGD(list(model.parameters()), lr=0.1), steps="all", on_nonfinite=mode)
        trainer._optimizer_step = poison_then_step.__get__(trainer)
        before = {name: p.data.copy() for name, p in model.named_parameters()}
        if expect_raise:
            with pytest.raises(NonFiniteError, match=r"non-finite gradient of parameter 'weight' of layer "
                                                     r"'classifier' \(Linear\), 1 of 1280 values, at batch 1"):
                trainer.train_epoch(_batches())
        else:
            result = trainer.train_epoch(_batches())
            assert result.skipped == 4 and result.samples == 0
        for name, p in model.named_parameters():  # the bad gradient never reached a parameter
            np.testing.assert_array_equal(p.data, before[name], err_msg=name)


def test_on_nonfinite_is_checked():
    model = digits_net(T=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="on_nonfinite='ignore'; allowed: stop, skip-batch"):
        OnlineTrainer(model, SGD(list(model.parameters()), lr=0.1), on_nonfinite="ignore")


def test_cli_sgd_lr_100_exits_non_zero_with_one_line_and_keeps_a_loadable_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--optimizer", "sgd", "--lr", "100", "--epochs", "2", "--out", str(run), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("hdlif-ref train: stopped: non-finite ")
    assert "epoch 1, batch " in err and "lr=100" in err and "last.h5" in err
    state = load_checkpoint(run / "last.h5")
    assert state["epoch"] == 0
    assert all(np.isfinite(np.asarray(v)).all() for v in state["model_state"].values())
    assert main(["eval", str(run / "last.h5")]) == 0


@pytest.mark.parametrize("argv", [
    ["--width", "0"], ["--width", "inf"], ["--width", "nan"], ["--lr", "nan"], ["--lr", "inf"], ["--momentum", "nan"],
    ["--noise", "inf"], ["--weight-decay", "nan"], ["--label-smoothing", "inf"], ["--parallel-fraction", "nan"],
    ["--train-fraction", "0"], ["--train-fraction", "nan"], ["--clip-norm", "inf"], ["--T", "1" + "0" * 30],
    ["--batch-size", "1" + "0" * 30], ["--epochs", "1" + "0" * 30]])
def test_bad_config_values_exit_2_naming_the_key_and_create_no_run_directory(argv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *argv, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    key = argv[0][2:].replace("-", "_")
    assert len(err.splitlines()) == 1 and f"config: {key}=" in err and f"({argv[0]})" in err and "allowed:" in err
    assert not run.exists()


@pytest.mark.parametrize("text, key", [('{"width": Infinity}', "width"), ('{"width": NaN}', "width"),
                                       ('{"noise": Infinity}', "noise"), ('{"lr": -Infinity}', "lr"),
                                       ('{"T": 1e30}', "T")])
def test_bad_values_in_a_config_file_exit_2_naming_the_key(text, key, tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(text)
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"config: {key}=" in err
    assert not run.exists()
