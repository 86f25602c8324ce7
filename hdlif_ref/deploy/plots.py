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


def spike_raster(layers: Sequence[tuple[str, np.ndarray]], path: str, max_neurons: int = 400) -> str:
    """One panel per neuron layer: a dot where a neuron emits a non-zero spike.

    ``layers``: ``(name, s)`` with ``s: [T, N, ...]`` (``N`` samples). The x axis runs
    through the samples one after the other (``T`` steps each); the y axis is the
    neuron index within a sample, evenly thinned to at most ``max_neurons``.
    """
    fig, axes = _figure(len(layers), row_height=2.4)
    for ax, (name, s) in zip(axes[:, 0], layers):
        T, N = s.shape[:2]
        flat = s.reshape(T, N, -1).transpose(2, 1, 0).reshape(-1, N * T)  # column = sample * T + t
        neurons = flat.shape[0]
        rows = np.unique(np.linspace(0, neurons - 1, min(max_neurons, neurons)).round().astype(int))
        y, x = np.nonzero(flat[rows] != 0)
        ax.scatter(x, y, s=4, marker="s", color="black", linewidths=0)
        for k in range(1, N):
            ax.axvline(k * T - 0.5, color="tab:red", lw=0.6, alpha=0.6)
        rate = float(np.count_nonzero(s)) / max(s.size, 1)
        shown = "" if len(rows) == neurons else f", {len(rows)} shown"
        ax.set_title(f"{name}: {neurons} neurons{shown}, firing rate {rate:.3f}", fontsize=9)
        ax.set_xlim(-0.5, N * T - 0.5)
        ax.set_ylim(-0.5, len(rows) - 0.5)
        ax.set_ylabel("neuron")
    axes[-1, 0].set_xlabel(f"time step (samples one after another, T = {layers[0][1].shape[0]} each; red lines "
                           f"separate samples)")
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
