"""``get_dataset(name, split, root=None, **options)``: the one entry point trainers and the CLI call."""
from __future__ import annotations

import inspect
from typing import Callable

from .cifar import cifar10, cifar100
from .cifar10_dvs import cifar10_dvs
from .digits import digits
from .event_digits import event_digits
from .mnist import fashion_mnist, mnist

DATASETS: dict[str, Callable] = {
    "digits": digits,
    "event-digits": event_digits,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
    "cifar10-dvs": cifar10_dvs,
}
"""Registry name -> loader ``f(split, root=None, **options)``; an explicit table, no discovery."""

SPLITS = ("train", "test")


def dataset_options(name: str) -> list[str]:
    """The keyword options the loader of ``name`` accepts (besides ``split`` and ``root``)."""
    factory = _factory(name)
    return [p.name for p in inspect.signature(factory).parameters.values() if p.kind is p.KEYWORD_ONLY]


def _factory(name: str) -> Callable:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def get_dataset(name: str, split: str, root=None, **options):
    """Load split ``split`` (``"train"`` or ``"test"``) of dataset ``name`` from ``root``.

    Parameters
    ----------
    name : one of :data:`DATASETS` (``digits``, ``event-digits``, ``cifar10``,
        ``cifar100``, ``mnist``, ``fashion-mnist``, ``cifar10-dvs``).
    split : ``"train"`` or ``"test"``.
    root : data root (None: ``$HDLIF_REF_DATA`` or ``./data``); the embedded
        datasets ignore it.
    options : the loader's keyword options (see :func:`dataset_options`).

    Returns
    -------
    A dataset with ``data``, ``targets``, ``num_classes``, ``kind``, ``len()``,
    ``take(indices)`` and ``describe()`` (docs/datasets.md).

    Raises
    ------
    ValueError : unknown name, split or option value.
    TypeError : unknown option name.
    FileNotFoundError : the files are missing (the message names them and where they were looked for).
    DatasetFormatError : a file is damaged.
    """
    factory = _factory(name)
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed: {', '.join(SPLITS)}")
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return factory(split, root, **options)


def split_options(name: str, *, T: int, upsample: bool = False, train_fraction: float = 1.0, noise: float = 0.0,
                  seed: int = 0) -> tuple[dict, dict]:
    """``(train options, test options)`` for dataset ``name`` from a run's settings.

    One place decides which run settings reach which loader, so that training,
    evaluation and the frozen model's ``run`` read the very same test split (noise,
    up-sampling and the event-digits motions depend on them).
    """
    _factory(name)
    if name == "digits":
        train = dict(upsample=upsample, train_fraction=train_fraction, noise=noise, seed=seed)
    elif name == "event-digits":
        train = dict(T=T, train_fraction=train_fraction, noise=noise, seed=seed)
    elif name == "cifar10-dvs":
        train = dict(T=T)
    else:
        train = {}
    return train, {k: v for k, v in train.items() if k != "train_fraction"}
