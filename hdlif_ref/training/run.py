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

import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..datasets import DataLoader, get_dataset
from ..datasets.encoders import EncodedLoader, encode
from ..datasets.registry import split_options
from ..deploy.metrics import count_ops, energy, parameter_memory
from ..layers.models import SpikingNet, digits_net, spiking_resnet, vgg_snn
from .checkpoint import load_checkpoint, save_checkpoint
from .config import resolve_config
from .optim import SGD, Adam, AdamW, param_groups
from .progress import MetricsLog, Progress
from .schedules import ConstantSchedule, CosineSchedule, LinearWarmup, StepSchedule
from .trainer import OnlineTrainer, STBPTrainer


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
                  width=config["width"], rng=rng)
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
    common = dict(T=config["T"], label_smoothing=config["label_smoothing"], clip_norm=config["clip_norm"])
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

    def restore(self, path: str) -> None:
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.schedule.load_state_dict(state["scheduler_state"])
        self.loader_rng.bit_generator.state = state["rng_state"]["loader"]
        self.trainer_rng.bit_generator.state = state["rng_state"]["trainer"]
        self.epoch, self.steps, self.best = state["epoch"], state["step"], state["best_metric"]

    def train_one_epoch(self, progress: Progress | None = None) -> dict:
        """One epoch of training, then evaluation; returns the epoch's metrics."""
        if progress is not None:
            progress.start_epoch(self.epoch, len(self.train_loader))
        update = (lambda i, loss: progress.update(loss=loss)) if progress is not None else None
        lr = self.optimizer.param_groups[0]["lr"]
        train = self.trainer.train_epoch(self.train_loader, update)
        self.steps += len(self.train_loader)
        test = self.trainer.evaluate(self.test_loader)
        self.schedule.step()
        self.epoch += 1
        return {"epoch": self.epoch, "lr": lr, "train_loss": train.loss, "train_accuracy": train.accuracy,
                "train_seconds": train.seconds, "test_loss": test.loss, "test_accuracy": test.accuracy,
                "test_accuracy_by_steps": test.accuracy_by_steps, "firing_rates": test.firing_rates,
                "eval_seconds": test.seconds, "peak_rss_mb": peak_rss_mb()}


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
                 stop_after_epochs: int | None = None) -> dict:
    """Train (or resume) a run in ``run_dir``; returns the final report.

    With ``resume=True`` the config and state come from ``run_dir``'s ``last.h5``;
    training continues up to the config's ``epochs``. ``stop_after_epochs`` ends this
    call early (after that many epochs of it), as an interruption would; ``resume``
    then continues the run.
    """
    if resume:
        last = os.path.join(run_dir, "last.h5")
        if not os.path.isfile(last):
            raise FileNotFoundError(f"cannot resume: {last!r} does not exist")
        saved = load_checkpoint(last)["config"]
        config = resolve_config(saved)
    else:
        config = resolve_config(config or {})
    os.makedirs(run_dir, exist_ok=True)
    run = Run(config)
    if resume:
        run.restore(os.path.join(run_dir, "last.h5"))
        log(f"resumed {run_dir} after epoch {run.epoch}")
    else:
        _write_json(os.path.join(run_dir, "config.json"), config)
    log(run.data.train.describe())
    spikes = f"{config['spike_bits']}-bit" if config["spike_bits"] else "real-valued"
    log(f"model {config['model']} ({config['neuron']}, {config['weight_mode']} synapses, {spikes} spikes, "
        f"T={config['T']}), "
        f"{config['method']} training" + (f" K={config['K']}" if config["method"] == "online" else ""))
    metrics_log = MetricsLog(os.path.join(run_dir, "metrics.jsonl"))
    progress = progress if progress is not None else Progress(config["epochs"])
    start, first_epoch = time.perf_counter(), run.epoch
    try:
        while run.epoch < config["epochs"]:
            if stop_after_epochs is not None and run.epoch - first_epoch >= stop_after_epochs:
                break
            metrics = run.train_one_epoch(progress)
            if run.best is None or metrics["test_accuracy"] > run.best:
                run.best = metrics["test_accuracy"]
                run.save(os.path.join(run_dir, "best.h5"))
            run.save(os.path.join(run_dir, "last.h5"))
            # logged after last.h5: an interruption before it repeats the epoch on resume, unlogged
            metrics_log.write(metrics)
            progress.end_epoch(run.epoch - 1, {k: metrics[k] for k in
                                               ("train_loss", "train_accuracy", "test_accuracy", "train_seconds")})
    finally:
        progress.close()
        metrics_log.close()
    report = {"test_accuracy": _last_metric(run_dir, "test_accuracy"), "best_test_accuracy": run.best,
              "epochs": run.epoch, "seconds": time.perf_counter() - start,
              **deployment_report(run.model, run.data, encoding=config["encoding"], seed=config["seed"])}
    _write_json(os.path.join(run_dir, "report.json"), report)
    return report


def _last_metric(run_dir: str, key: str):
    from .progress import read_metrics

    rows = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    return rows[-1][key] if rows else None


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def load_trained(path: str, data_dir: str | None = None) -> tuple[dict, Data, SpikingNet]:
    """``(config, data, model)`` from a checkpoint: the run's data and its trained network.

    ``data_dir`` overrides the config's data directory (the files may have moved).
    """
    state = load_checkpoint(path)
    config = resolve_config(state["config"])
    if data_dir is not None:
        config["data_dir"] = data_dir
    data = make_data(config)
    model = make_model(config, data, np.random.default_rng(0))
    try:
        model.load_state_dict(state["model_state"])
    except ValueError as exc:
        raise ValueError(f"checkpoint {path!r} does not fit the network its config describes: {exc}") from None
    return config, data, model
