"""A whole training run: data, model, optimizer, epochs, metrics log, checkpoints, resume, report.

``run_training(config, run_dir)`` is what ``hdlif-ref train`` calls. The run
directory holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON
object per epoch), ``last.h5`` and ``best.h5`` (checkpoints, docs/training.md) and
``report.json``.

Randomness: the config's ``seed`` feeds one ``np.random.SeedSequence`` that spawns
three generators: model initialization, data order and augmentation (the
loader's), and the online trainer's step draws (SLTT-K). The last two are saved in
every checkpoint, so ``resume`` continues exactly as the uninterrupted run would.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._safe_files import atomic_write
from ..datasets import DataLoader, get_dataset
from ..datasets.encoders import EncodedLoader, encode
from ..datasets.registry import split_options
from ..deploy.metrics import count_ops, energy, parameter_memory
from ..models import SpikingNet, digits_net, spiking_resnet, vgg_snn
from .checkpoint import load_checkpoint, save_checkpoint
from .config import resolve_config, saved_config
from .optim import SGD, Adam, AdamW, param_groups
from .progress import Progress
from .schedules import ConstantSchedule, CosineSchedule, LinearWarmup, StepSchedule
from .trainer import OnlineTrainer, STBPTrainer
from .validate import validate_finite_tree, validate_state


@dataclass
class Data:
    train: Any
    test: Any
    in_channels: int
    input_size: int
    num_classes: int
    kind: str


def make_data(config: dict) -> Data:
    """Load both splits of the configured dataset."""
    name, root = config["dataset"], config["data_dir"]
    train_options, test_options = split_options(name, **data_settings(config))
    if config["encoding"] != "direct":  # spike encoders read intensities in [0, 1]
        train_options, test_options = dict(train_options, normalize="unit"), dict(test_options, normalize="unit")
    train = get_dataset(name, "train", root, **train_options)
    test = get_dataset(name, "test", root, **test_options)
    sample = train.data.shape[1:] if train.kind == "static" else train.data.shape[2:]
    return Data(train, test, int(sample[0]), int(sample[-1]), int(train.num_classes), train.kind)


def data_settings(config: dict) -> dict:
    """The run settings that decide the data (stored with a frozen model, so ``run`` reads the same split)."""
    return {key: config[key] for key in ("T", "upsample", "train_fraction", "noise", "seed")}


def make_model(config: dict, data: Data, rng: np.random.Generator) -> SpikingNet:
    """Build the configured network for the data's channels, size and classes."""
    common = dict(num_classes=data.num_classes, T=config["T"], neuron=config["neuron"],
                  parallel_fraction=config["parallel_fraction"], weight_mode=config["weight_mode"],
                  spike_bits=config["spike_bits"], seca=config["seca"], per_channel=config["per_channel"],
                  width=config["width"], bn_stats=config["bn_stats"], rng=rng)
    name = config["model"]
    if name == "digits_net":
        return digits_net(in_channels=data.in_channels, input_size=data.input_size, **common)
    if name == "vgg_snn":
        return vgg_snn(in_channels=data.in_channels, input_size=data.input_size, **common)
    depth = int(name[len("resnet"):])
    return spiking_resnet(depth, stem="cifar", in_channels=data.in_channels, **common)


def make_optimizer(config: dict, model: SpikingNet):
    groups = param_groups(model, config["weight_decay"])
    if config["optimizer"] == "sgd":
        return SGD(groups, lr=config["lr"], momentum=config["momentum"])
    if config["optimizer"] == "adamw":
        return AdamW(groups, lr=config["lr"])
    return Adam(groups, lr=config["lr"])


def make_schedule(config: dict, optimizer):
    """Stepped once per epoch."""
    epochs, warmup = config["epochs"], config["warmup_epochs"]
    main = max(epochs - warmup, 1)
    if config["schedule"] == "cosine":
        schedule = CosineSchedule(optimizer, T_max=main)
    elif config["schedule"] == "step":
        schedule = StepSchedule(optimizer, step_size=max(main // 3, 1), gamma=0.1)
    else:
        schedule = ConstantSchedule(optimizer)
    return LinearWarmup(schedule, warmup) if warmup else schedule


def make_trainer(config: dict, model: SpikingNet, optimizer, rng: np.random.Generator):
    common = dict(T=config["T"], label_smoothing=config["label_smoothing"], clip_norm=config["clip_norm"],
                  on_nonfinite=config["on_nonfinite"])
    if config["method"] == "stbp":
        return STBPTrainer(model, optimizer, **common)
    return OnlineTrainer(model, optimizer, steps=config["K"], update=config["update"], rng=rng, **common)


def make_loaders(config: dict, data: Data, rng: np.random.Generator) -> tuple[DataLoader, DataLoader]:
    transform = None
    if config["augment"]:
        from ..datasets.augment import RandomCropFlip, RandomTranslateFlip
        transform = (RandomCropFlip(max(data.input_size // 8, 1)) if data.kind == "static"
                     else RandomTranslateFlip(max(data.input_size // 16, 1)))
    train = DataLoader(data.train, config["batch_size"], shuffle=True, rng=rng, transform=transform)
    test = DataLoader(data.test, config["eval_batch_size"])
    return encoded(config, train, rng), encoded(config, test)


def encoded(config: dict, loader, rng: np.random.Generator | None = None):
    """``loader`` with the config's input encoding (``direct``: the loader itself, images repeated by the
    trainer). Rate encoding draws from ``rng`` (training: new spikes each epoch, restored on resume) or,
    without it, from ``seed`` every pass (evaluation: the same spikes each time)."""
    if config["encoding"] == "direct":
        return loader
    return EncodedLoader(loader, config["encoding"], config["T"], rng=rng,
                         seed=None if rng is not None else config["seed"])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


class Run:
    """Everything a run needs, built from a resolved config."""

    def __init__(self, config: dict):
        self.config = config
        init_rng, loader_rng, trainer_rng = (np.random.default_rng(s)
                                             for s in np.random.SeedSequence(config["seed"]).spawn(3))
        self.data = make_data(config)
        self.model = make_model(config, self.data, init_rng)
        self.optimizer = make_optimizer(config, self.model)
        self.schedule = make_schedule(config, self.optimizer)
        self.trainer = make_trainer(config, self.model, self.optimizer, trainer_rng)
        self.train_loader, self.test_loader = make_loaders(config, self.data, loader_rng)
        self.loader_rng, self.trainer_rng = loader_rng, trainer_rng
        self.epoch, self.steps, self.best = 0, 0, None

    def save(self, path: str) -> None:
        save_checkpoint(path, model_state=self.model.state_dict(), optimizer_state=self.optimizer.state_dict(),
                        scheduler_state=self.schedule.state_dict(), epoch=self.epoch, step=self.steps,
                        rng_state={"loader": self.loader_rng.bit_generator.state,
                                   "trainer": self.trainer_rng.bit_generator.state},
                        config=self.config, best_metric=self.best)

    def restore(self, path: str, extend: bool = False) -> None:
        """Continue from the checkpoint at ``path``; ``extend``: the config asks for more epochs than the
        checkpoint's schedule planned, so the schedule is re-planned for the new total from the step it reached."""
        state = load_checkpoint(path)
        if extend:
            state["scheduler_state"] = _replanned(state["scheduler_state"], self.schedule.state_dict())
        validate_state(self.model, state["model_state"], f"checkpoint {path!r}")
        validate_finite_tree(state["optimizer_state"], "the optimizer state", f"checkpoint {path!r}")
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.schedule.load_state_dict(state["scheduler_state"])
        self.loader_rng.bit_generator.state = state["rng_state"]["loader"]
        self.trainer_rng.bit_generator.state = state["rng_state"]["trainer"]
        self.epoch, self.steps, self.best = state["epoch"], state["step"], state["best_metric"]

    def fit(self, run_dir: str, progress: Progress | None = None, stop_after_epochs: int | None = None) -> None:
        """Train up to the config's epochs with :meth:`Trainer.fit`, checkpoints and metrics in ``run_dir``."""
        def track(trainer, metrics: dict) -> None:  # what Run.save writes: epoch, batches so far, best accuracy
            self.epoch = metrics["epoch"]
            self.steps += len(self.train_loader)
            self.best = metrics["test_accuracy"] if self.best is None else max(self.best, metrics["test_accuracy"])
            metrics["peak_rss_mb"] = peak_rss_mb()

        self.trainer.fit(self.train_loader, self.test_loader, self.config["epochs"], callbacks=[track],
                         schedule=self.schedule, progress=progress, out=run_dir, save=self.save,
                         start_epoch=self.epoch, best=self.best, stop_after_epochs=stop_after_epochs)


def deployment_report(model: SpikingNet, data: Data, samples: int = 64, encoding: str = "direct",
                      seed: int = 0) -> dict:
    """Parameter memory (E18), SOPs/MACs/NOPs measured on test samples (E19), energy (E20)."""
    x = data.test.take(np.arange(min(samples, len(data.test))))[0]
    if data.kind == "events":
        x = np.moveaxis(x, 1, 0)  # [N, T, ...] -> [T, N, ...]
    elif encoding != "direct":
        x = encode(np.clip(x, 0, 1), model.T, encoding, np.random.default_rng(seed)).astype(np.float32)
    counts = count_ops(model, x, model.T)
    return {"parameter_memory_mb": parameter_memory(model)["megabytes"], "sops": counts.sops, "macs": counts.macs,
            "nops": counts.nops, "energy_mj": energy(counts) * 1e3,
            "energy_bitwidth_mj": energy(counts, "bitwidth") * 1e3,
            "sops_by_bits": {str(k): v for k, v in counts.sops_by_bits.items()}}


def run_training(config: dict | None = None, run_dir: str = "runs/default", resume: bool = False,
                 progress: Progress | None = None, log: Callable[[str], None] = print,
                 stop_after_epochs: int | None = None, epochs: int | None = None) -> dict:
    """Train (or resume) a run in ``run_dir``; returns the final report.

    With ``resume=True`` the config and state come from ``run_dir``'s ``last.h5`` (or,
    when it is missing, ``best.h5``: a run killed after its first ``best.h5`` and before
    its first ``last.h5``; the log says so); training continues up to the config's
    ``epochs`` (or ``epochs``, which extends a finished run: ``--resume RUN --epochs N``).
    ``stop_after_epochs`` ends this call early (after that many epochs of it), as an
    interruption would; ``resume`` then continues the run.
    """
    if epochs is not None and not resume:
        raise ValueError("run_training: epochs= extends a resumed run; give a new run's epochs in its config")
    if resume:
        last = _resume_checkpoint(run_dir, log)
        state = load_checkpoint(last)
        config = saved_config(state["config"])
        if epochs is not None:
            if epochs < state["epoch"]:
                raise ValueError(f"--epochs {epochs}: the run in {run_dir!r} has already trained {state['epoch']} "
                                 f"epochs; give at least that many")
            config = resolve_config({"epochs": int(epochs)}, config)
    else:
        config = resolve_config(config or {})
    os.makedirs(run_dir, exist_ok=True)
    run = Run(config)
    if resume:
        run.restore(last, extend=epochs is not None)
        log(f"resumed {run_dir} after epoch {run.epoch}")
    else:
        _write_json(os.path.join(run_dir, "config.json"), config)
        run.save(os.path.join(run_dir, "last.h5"))  # epoch 0: a good checkpoint exists before the first step
    log(run.data.train.describe())
    spikes = f"{config['spike_bits']}-bit" if config["spike_bits"] else "real-valued"
    log(f"model {config['model']} ({config['neuron']}, {config['weight_mode']} synapses, {spikes} spikes, "
        f"T={config['T']}), "
        f"{config['method']} training" + (f" K={config['K']}" if config["method"] == "online" else ""))
    progress = progress if progress is not None else Progress(config["epochs"])
    start = time.perf_counter()
    try:
        run.fit(run_dir, progress, stop_after_epochs)
    finally:
        progress.close()
    report = {"test_accuracy": _last_metric(run_dir, "test_accuracy"), "best_test_accuracy": run.best,
              "epochs": run.epoch, "seconds": time.perf_counter() - start,
              **deployment_report(run.model, run.data, encoding=config["encoding"], seed=config["seed"])}
    _write_json(os.path.join(run_dir, "report.json"), report)
    return report


def _replanned(saved: dict, fresh: dict) -> dict:
    """``fresh``'s plan (settings such as ``T_max``) with ``saved``'s progress (step reached, base rates)."""
    if not isinstance(saved, dict) or saved.get("kind") != fresh.get("kind"):
        return saved  # a different schedule: load_state_dict says so
    merged = dict(fresh, last_step=saved.get("last_step"), base_lrs=saved.get("base_lrs"))
    if "after" in fresh and isinstance(saved.get("after"), dict):
        merged["after"] = _replanned(saved["after"], fresh["after"])
    return merged


def _resume_checkpoint(run_dir: str, log: Callable[[str], None]) -> str:
    """``run_dir/last.h5``, or ``best.h5`` when ``last.h5`` is missing (said in the log)."""
    last, best = os.path.join(run_dir, "last.h5"), os.path.join(run_dir, "best.h5")
    if os.path.isfile(last):
        return last
    if os.path.isfile(best):
        log(f"{last} is missing (the run stopped before writing it); resuming from {best}")
        return best
    raise FileNotFoundError(errno.ENOENT, f"cannot resume: {last!r} does not exist (nor does best.h5)", run_dir)


def _last_metric(run_dir: str, key: str):
    from .progress import read_metrics

    rows = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    return rows[-1][key] if rows else None


def _write_json(path: str, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", binary=False)


def load_trained(path: str, data_dir: str | None = None) -> tuple[dict, Data, SpikingNet]:
    """``(config, data, model)`` from a checkpoint: the run's data and its trained network.

    ``data_dir`` overrides the config's data directory (the files may have moved).
    """
    state = load_checkpoint(path)
    config = saved_config(state["config"])
    if data_dir is not None:
        config["data_dir"] = data_dir
    data = make_data(config)
    model = make_model(config, data, np.random.default_rng(0))
    validate_state(model, state["model_state"], f"checkpoint {path!r}")  # names, dtypes, shapes, domains
    model.load_state_dict(state["model_state"])
    return config, data, model
