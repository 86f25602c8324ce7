"""PNG figures for ``hdlif-ref plot``: spike rasters, membrane traces, training curves, the ``eps[i, t]`` matrix.

Drawing only: every function takes plain arrays, draws with matplotlib's
object-oriented API on the Agg canvas (no pyplot, no global backend change, no
display needed) and writes one PNG. The data come from ``hdlif_ref._cli.plot``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np


class MatplotlibMissing(ImportError):
    """matplotlib (the ``viz`` extra) is not installed."""


def _figure(rows: int, cols: int = 1, width: float = 8.0, row_height: float = 2.6):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MatplotlibMissing("plotting needs matplotlib, the 'viz' extra: pip install 'hdlif-ref[viz]'") from exc
    fig = Figure(figsize=(width, max(row_height * rows, 2.8)), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _save(fig, path: str) -> str:
    from .._safe_files import atomic_write

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


#: A neuron row needs this many pixels for its spikes to stay apart from the next row's (2 dark + 1 gap).
MIN_PIXELS_PER_ROW = 3


def raster_rows(panel_pixels: float, neurons: int, max_neurons: int | None = None) -> np.ndarray:
    """Indices of the neurons a raster panel ``panel_pixels`` high shows: all of them if each gets at least
    :data:`MIN_PIXELS_PER_ROW` pixels (and ``max_neurons`` allows), else evenly spaced ones that fit."""
    fit = max(int(panel_pixels // MIN_PIXELS_PER_ROW), 1)
    count = min(neurons, fit, max_neurons if max_neurons is not None else neurons)
    return np.unique(np.linspace(0, neurons - 1, count).round().astype(int)) if neurons else np.zeros(0, int)


def _spike_marks(x: np.ndarray, y: np.ndarray, cell_px: tuple[float, float]) -> np.ndarray:
    """Rectangles (data units, a cell is 1 x 1) for spikes at columns ``x``, rows ``y``.

    A mark leaves a gap of at least one pixel (and 25% of a wide cell) to its neighbours, so
    adjacent spikes stay two marks: the dark area is then proportional to the firing rate."""
    w_px, h_px = cell_px
    half_h = max(h_px - 1.0, 0.5 * h_px) / h_px / 2
    half_w = min(max(w_px - 1.0, 0.5 * w_px), 0.75 * w_px) / w_px / 2
    xs = np.stack([x - half_w, x + half_w, x + half_w, x - half_w], axis=1)
    ys = np.stack([y - half_h, y - half_h, y + half_h, y + half_h], axis=1)
    return np.stack([xs, ys], axis=2)


def raster_figure(layers: Sequence[tuple[str, np.ndarray]], max_neurons: int | None = None, width: float = 8.0,
                  row_height: float = 2.4):
    """The figure of :func:`spike_raster` and, per panel, ``(axes, neuron indices shown, pixels per row)``."""
    from matplotlib.collections import PolyCollection
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, axes = _figure(len(layers), width=width, row_height=row_height)
    T = layers[0][1].shape[0]
    for ax, (name, _) in zip(axes[:, 0], layers):  # the final texts first: the layout decides the panel size
        ax.set_title(f"{name}: 000 of 000 neurons shown (evenly spaced), firing rate 0.000", fontsize=9)
        ax.set_ylabel("neuron")
    axes[-1, 0].set_xlabel(f"time step (samples one after another, T = {T} each; red lines separate samples)")
    fig.draw_without_rendering()
    panels = []
    for ax, (name, s) in zip(axes[:, 0], layers):
        T, N = s.shape[:2]
        flat = s.reshape(T, N, -1).transpose(2, 1, 0).reshape(-1, N * T)  # column = sample * T + t
        neurons = flat.shape[0]
        box = ax.get_window_extent()
        rows = raster_rows(box.height, neurons, max_neurons)
        y, x = np.nonzero(flat[rows] != 0)
        cell = (box.width / max(N * T, 1), box.height / max(len(rows), 1))
        ax.add_collection(PolyCollection(_spike_marks(x, y, cell), facecolors="black", edgecolors="none",
                                         antialiased=False))
        for k in range(1, N):
            ax.axvline(k * T - 0.5, color="tab:red", lw=0.6, alpha=0.6)
        rate = float(np.count_nonzero(s)) / max(s.size, 1)
        shown = (f"{neurons} neurons" if len(rows) == neurons else
                 f"{len(rows)} of {neurons} neurons shown (evenly spaced)")
        ax.set_title(f"{name}: {shown}, firing rate {rate:.3f}", fontsize=9)
        ax.set_xlim(-0.5, N * T - 0.5)
        ax.set_ylim(len(rows) - 0.5, -0.5)  # neuron 0 at the top, as a raster is read
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(  # tick labels are neuron indices, not row numbers
            lambda pos, _, rows=rows: str(rows[int(round(pos))]) if 0 <= round(pos) < len(rows) else ""))
        panels.append((ax, rows, cell[1]))
    return fig, panels


def spike_raster(layers: Sequence[tuple[str, np.ndarray]], path: str, max_neurons: int | None = None,
                 width: float = 8.0, row_height: float = 2.4) -> str:
    """One panel per neuron layer: a mark where a neuron emits a non-zero spike.

    ``layers``: ``(name, s)`` with ``s: [T, N, ...]`` (``N`` samples). The x axis runs
    through the samples one after the other (``T`` steps each); the y axis is the
    neuron index within a sample. The panel's height in pixels decides how many
    neurons fit (at least :data:`MIN_PIXELS_PER_ROW` pixels each, so that the spikes
    of neighbouring neurons stay apart; at most ``max_neurons`` if given); when not all
    fit, evenly spaced ones are shown and the title says how many. Each spike is a
    rectangle one pixel (or a quarter of a wide cell) smaller than its cell, so the
    dark area of a panel tracks its firing rate. ``width``, ``row_height``: inches
    (figure width, height per panel) at 110 dpi.
    """
    fig, _ = raster_figure(layers, max_neurons, width, row_height)
    return _save(fig, path)


def membrane_traces(traces: Sequence[dict[str, Any]], path: str) -> str:
    """One panel per neuron: ``m_t`` (charge, E1), the value compared with the threshold (``mhat`` for
    Mem-BN), ``u_t`` after the reset, ``theta_t`` (dashed) and the spikes ``s*_t`` (bars).

    Each trace: ``label``, ``m``, ``u`` (or None), ``theta``, ``s`` (``[T]`` each), optional ``mhat``.
    """
    fig, axes = _figure(len(traces), width=9.5, row_height=2.5)
    for ax, tr in zip(axes[:, 0], traces):
        t = np.arange(1, len(tr["m"]) + 1)
        ax.bar(t, tr["s"], width=0.35, color="tab:orange", alpha=0.7, label="spike s*_t")
        ax.plot(t, tr["m"], "o-", color="tab:blue", label="charge m_t")
        if tr.get("mhat") is not None:
            ax.plot(t, tr["mhat"], "D-", color="tab:purple", label="mhat_t (Mem-BN)")
        if tr.get("u") is not None:
            ax.plot(t, tr["u"], "s--", color="tab:green", ms=4, label="u_t after reset")
        ax.step(t, tr["theta"], where="mid", color="tab:red", ls=":", lw=2.0, zorder=5, label="threshold theta_t")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_title(tr["label"], fontsize=9)
        ax.set_xticks(t)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("time step t")
    return _save(fig, path)


def training_curves(records: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """Loss, accuracy and learning rate per epoch from a run's ``metrics.jsonl`` records."""
    panels = [("loss", ("train_loss", "test_loss")), ("accuracy", ("train_accuracy", "test_accuracy")),
              ("learning rate", ("lr",))]
    panels = [(label, [k for k in keys if any(r.get(k) is not None for r in records)]) for label, keys in panels]
    panels = [(label, keys) for label, keys in panels if keys]
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(len(panels), row_height=2.4)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    for ax, (label, keys) in zip(axes[:, 0], panels):
        for key in keys:
            values = [np.nan if r.get(key) is None else float(r[key]) for r in records]
            ax.plot(epochs, values, "o-", ms=3, label=key)
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    return _save(fig, path)


def eps_heatmap(eps: np.ndarray, path: str, title: str, fired: np.ndarray | None = None) -> str:
    """The ``eps[i, t]`` matrix of one neuron (SPEC E4): row ``i`` (the spike), column ``t`` (the membrane);
    ``i < t`` is blank (no dependence backwards in time). ``fired``: ``H(m_t - theta_t)`` per step, shown
    on the axis labels."""
    T = eps.shape[0]
    fig, axes = _figure(1, width=min(max(6.5, 2.0 + 0.75 * T), 11.0), row_height=min(max(5.0, 1.6 + 0.65 * T), 9.0))
    ax = axes[0, 0]
    shown = np.where(np.tril(np.ones((T, T), dtype=bool)), eps, np.nan)
    image = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=max(1.0, float(np.nanmax(shown))), origin="upper")
    fig.colorbar(image, ax=ax, shrink=0.8, label="eps[i, t] = d s*_i / d m_t")
    if T <= 16:
        for i in range(T):
            for t in range(i + 1):
                value = eps[i, t]
                ax.text(t, i, f"{value:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if value < 0.5 else "black")
    marks = [""] * T if fired is None else [" (H=1)" if f else " (H=0)" for f in fired]
    ax.set_xticks(range(T), [f"{t + 1}{marks[t]}" for t in range(T)], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(T), [f"{i + 1}" for i in range(T)], fontsize=7)
    ax.set_xlabel("t (membrane m_t)")
    ax.set_ylabel("i (spike s*_i)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
