"""Raster plots stay readable: the dark area of a panel tracks its firing rate, whatever the neuron count."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from hdlif_ref.deploy import plots  # noqa: E402

RATES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def _spikes(rate: float, neurons: int, T: int = 4, N: int = 4, seed: int = 0) -> np.ndarray:
    """Exactly ``rate`` of the ``[T, N, neurons]`` entries fire, spread at random (4-bit-like values)."""
    rng = np.random.default_rng(seed)
    flat = np.zeros(T * N * neurons)
    flat[rng.choice(flat.size, int(round(rate * flat.size)), replace=False)] = rng.integers(1, 16, 1)
    return flat.reshape(T, N, neurons)


def _dark_fraction(path, box) -> float:
    """Share of black pixels (all channels < 0.3: the spike marks, not the red separators) inside a panel."""
    from matplotlib.image import imread

    image = imread(path)[..., :3]
    height = image.shape[0]
    x0, x1 = int(np.ceil(box.x0)) + 2, int(np.floor(box.x1)) - 2  # inside the spines
    y0, y1 = height - int(np.floor(box.y1)) + 2, height - int(np.ceil(box.y0)) - 2  # display y runs upwards
    panel = image[y0:y1, x0:x1]
    return float((panel.max(axis=2) < 0.3).mean())


@pytest.mark.parametrize("neurons", [40, 400, 4000])
def test_dark_pixels_track_the_firing_rate(tmp_path, neurons):
    fractions = []
    for rate in RATES:
        fig, panels = plots.raster_figure([("layer", _spikes(rate, neurons))])
        path = tmp_path / f"raster_{neurons}_{rate}.png"
        fig.savefig(path, format="png")
        ax, rows, px_per_row = panels[0]
        assert px_per_row >= plots.MIN_PIXELS_PER_ROW  # rows never merge into one another
        assert len(rows) == min(neurons, len(rows)) and len(rows) <= neurons
        if len(rows) < neurons:
            assert f"{len(rows)} of {neurons} neurons shown" in ax.get_title()
        fractions.append(_dark_fraction(path, ax.get_window_extent()))
    fractions = np.array(fractions)
    assert (np.diff(fractions) > 0).all(), fractions  # monotone
    per_rate = fractions / np.array(RATES)
    # roughly proportional: the dark share per unit of firing rate (the mark's share of its cell) is
    # about constant (sampling of the shown rows moves it a little), and well inside (0, 1)
    assert per_rate.max() / per_rate.min() < 1.6, per_rate
    assert 0.15 < per_rate.mean() < 0.95, per_rate
    # the old default drew 400 rows in ~190 px: every cell black at rate 0.3; now far from saturation
    assert fractions[RATES.index(0.3)] < 0.6


def test_small_layers_show_every_neuron_and_max_neurons_caps(tmp_path):
    _, panels = plots.raster_figure([("a", _spikes(0.2, 12)), ("b", _spikes(0.2, 400))], max_neurons=30)
    (ax_a, rows_a, _), (ax_b, rows_b, _) = panels
    assert list(rows_a) == list(range(12)) and "12 neurons," in ax_a.get_title()
    assert len(rows_b) == 30 and rows_b[0] == 0 and rows_b[-1] == 399 and "30 of 400 neurons shown" in ax_b.get_title()
    tall, = plots.raster_figure([("c", _spikes(0.2, 400))], row_height=6.0)[1]
    short, = plots.raster_figure([("c", _spikes(0.2, 400))], row_height=2.4)[1]
    assert len(tall[1]) > 2 * len(short[1])  # a taller panel shows more neurons
