"""``hdlif-ref plot``: the data each figure draws (checked against the equations), the PNGs, the errors."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from hdlif_ref._cli.plot import network_activity  # noqa: E402
from hdlif_ref.autograd import no_grad  # noqa: E402
from hdlif_ref.cli import main  # noqa: E402
from hdlif_ref.deploy import plots  # noqa: E402
from hdlif_ref.oracle.verify import eps_by_differences  # noqa: E402
from hdlif_ref.training.config import resolve_config  # noqa: E402
from hdlif_ref.training.progress import MetricsLog  # noqa: E402
from hdlif_ref.training.run import Run  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG
    height, width = imread(path).shape[:2]
    return height > 200 and width > 400


def checkpoint(path, **config):
    """An (untrained) network of the run's exact format: what ``train`` would save after epoch 0."""
    run = Run(resolve_config(dict(train_fraction=0.1, width=0.5, **config)))
    run.save(str(path))
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    return {"membn": checkpoint(root / "membn.h5"),
            "mixed": checkpoint(root / "mixed.h5", neuron="hdlif", parallel_fraction=0.5, spike_bits=None)}


@pytest.fixture
def captured(monkeypatch):
    """What each figure function was asked to draw (then drawn for real)."""
    seen = {}
    for name in ("spike_raster", "membrane_traces", "training_curves", "eps_heatmap"):
        real = getattr(plots, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen[_name] = args
            return _real(*args, **kwargs)
        monkeypatch.setattr(plots, name, spy)
    return seen


def test_raster_draws_the_spikes_every_layer_emits(ckpts, tmp_path, captured, capsys):
    out = tmp_path / "raster.png"
    assert main(["plot", "raster", str(ckpts["mixed"]), "--samples", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}" and is_png(out)
    layers = captured["spike_raster"][0]
    assert len(layers) == 3 and all(s.shape[:2] == (4, 3) for _, s in layers)
    activity = network_activity(str(ckpts["mixed"]), None, 3)
    kinds = {type(module).__name__ for module, _, _ in activity.values()}
    assert kinds == {"HDLIF", "ParallelHDLIF"}
    for (name, s), (name2, (module, I, s2)) in zip(layers, activity.items()):
        assert name == name2 and np.array_equal(s, s2)
        # the single-step capture agrees with the layer's own fused multi-step forward on the captured currents
        with no_grad():
            assert np.allclose(module.forward_seq(I.astype(np.float32)).data, s, rtol=1e-6, atol=1e-6)


def test_membrane_traces_follow_e1_e2_and_e9(ckpts, tmp_path, captured):
    out = tmp_path / "m.png"
    assert main(["plot", "membrane", "--T", "6", "--seed", "3", "--out", str(out)]) == 0
    for tr in captured["membrane_traces"][0]:  # synthetic HD-LIF: u = min(m, theta), s* = relu(m - theta)
        assert np.array_equal(tr["u"], np.minimum(tr["m"], tr["theta"]))
        assert np.array_equal(tr["s"], np.maximum(tr["m"] - tr["theta"], 0))
    assert is_png(out)
    assert main(["plot", "membrane", str(ckpts["membn"]), "--neurons", "0,5", "--sample", "2",
                 "--out", str(out)]) == 0
    traces = captured["membrane_traces"][0]
    assert [t["label"].split(" (")[0] for t in traces] == ["Mem-BN HD-LIF neuron 0", "Mem-BN HD-LIF neuron 5"]
    for tr in traces:  # SPEC E9: mhat is what meets theta; u = mhat - s*
        assert np.allclose(tr["s"], np.maximum(tr["mhat"] - tr["theta"], 0), atol=1e-6)
        assert np.allclose(tr["u"], tr["mhat"] - tr["s"], atol=1e-6)


def test_eps_heatmap_is_the_finite_difference_eps(tmp_path, captured):
    out = tmp_path / "eps.png"
    assert main(["plot", "eps", "--T", "7", "--lam", "0.75", "--seed", "5", "--neuron", "1", "--out",
                 str(out)]) == 0
    eps = captured["eps_heatmap"][0]
    rng = np.random.default_rng(5)  # the command's current: I ~ N(0.6 theta, 0.6 theta), 3 neurons
    I = rng.normal(0.6, 0.6, (7, 3))
    assert np.allclose(eps, eps_by_differences(I, np.full(7, 0.75), np.ones(7))[:, :, 1], atol=1e-9)
    assert is_png(out)


def test_eps_of_a_membn_layer_uses_its_reparameterized_leak(ckpts, tmp_path, captured):
    module, I, s = network_activity(str(ckpts["membn"]), None, 1)["features.2"]
    fires = (s[:, 0].reshape(4, -1) != 0)
    # a neuron silent at some step and firing at the next: eps has an off-diagonal entry lamhat
    k = int(np.flatnonzero((~fires[:-1] & fires[1:]).any(axis=0))[0])
    out = tmp_path / "eps.png"
    assert main(["plot", "eps", str(ckpts["membn"]), "--layer", "features.2", "--neuron", str(k),
                 "--out", str(out)]) == 0
    eps = captured["eps_heatmap"][0]
    assert is_png(out)
    # independently: finite differences of the re-parameterized HD-LIF (SPEC E10) on its input Ihat
    rep = module.reparameterize()
    T, C = rep.scale.shape
    c = k // (I[0, 0].size // C)
    Ihat = rep.input(I)[:, 0].reshape(T, -1)[:, [k]].astype(np.float64)
    lam = rep.neuron.lam.data[:, c].astype(np.float64)
    theta = np.broadcast_to(rep.neuron.theta.data.reshape(T, -1), (T, C))[:, c].astype(np.float64)
    numeric = eps_by_differences(Ihat, lam, theta)[:, :, 0]
    assert np.allclose(eps, numeric, atol=1e-4)
    assert np.tril(eps, -1).any()  # the chosen neuron really shows a lam product


def test_curves_from_a_run_directory(tmp_path, captured):
    with MetricsLog(tmp_path / "metrics.jsonl") as log:
        for epoch, (loss, acc) in enumerate([(2.3, 0.1), (1.2, 0.6), (0.7, 0.8)], start=1):
            log.write({"epoch": epoch, "lr": 0.003 / epoch, "train_loss": loss, "test_loss": loss + 0.1,
                       "train_accuracy": acc, "test_accuracy": acc - 0.05})
    assert main(["plot", "curves", str(tmp_path)]) == 0
    records = captured["training_curves"][0]
    assert [r["test_accuracy"] for r in records] == pytest.approx([0.05, 0.55, 0.75])
    assert is_png(tmp_path / "curves.png")


@pytest.mark.parametrize("argv, message", [
    (["plot", "membrane", "CKPT", "--layer", "nope"], "'nope' is not a neuron layer of this network; neuron layers: "
                                                     "features.2"),
    (["plot", "membrane", "--neurons", "0,9"], "indices must be in 0..2"),
    (["plot", "curves", "/nonexistent/run"], "no metrics.jsonl"),
    (["plot", "raster", "/nonexistent/ckpt.h5"], "no such file"),
    (["plot", "bars"], "invalid choice: 'bars'"),
])
def test_errors_are_one_line_with_exit_code_2(ckpts, argv, message, capsys):
    argv = [str(ckpts["membn"]) if a == "CKPT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_missing_matplotlib_names_the_viz_extra(monkeypatch, capsys):
    for name in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    assert main(["plot", "eps"]) == 2
    assert "pip install 'hdlif-ref[viz]'" in capsys.readouterr().err


def test_subprocess_plot(tmp_path):
    done = subprocess.run(["hdlif-ref", "plot", "eps", "--out", str(tmp_path / "e.png")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert is_png(tmp_path / "e.png")


def test_default_output_goes_beside_the_checkpoint_or_into_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "eps", "--T", "4"]) == 0
    assert (tmp_path / "plots" / "eps.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]  # nothing else in the working directory
