"""Model builders: spiking ResNet-18/19/34, VGG-SNN (DVS-CIFAR10), and a small digits network.

Common options (docs/models.md):

* ``neuron``: ``"lif"`` (E7), ``"hdlif"`` (E1-E2), ``"parallel"`` (E8, every layer) or
  ``"membn"`` (E9);
* ``parallel_fraction`` in [0, 1]: the share of neuron layers that become Parallel
  HD-LIF, by the rule of :func:`parallel_layers` (HD-LIF and Mem-BN only);
* ``weight_mode``: ``"fp32"``, ``"binary"`` (E11), ``"ternary"`` (E12); the first layer
  and the classifier always stay float32 (SPEC E12 DC);
* ``spike_bits``: ``n``-bit spikes (E13) for every neuron layer, or ``None``;
* ``seca``: ``None``, ``"I"`` (E14) or ``"II"`` (E15) after every synapse's batch norm;
* ``T`` time steps, ``per_channel`` neuron parameters, ``rng`` for initialization;
* ``bn_stats``: ``"per_step"`` (default, SPEC E16 DC: every synapse's batch norm keeps
  running statistics ``[T, C]``, one row per time step, as Mem-BN's ``BN_t`` of E9) or
  ``"shared"`` (one ``[C]`` set for all steps: what v0.1 built; kept so that its
  checkpoints still load; a config without the key means ``"shared"``);
* ``surrogate`` (``neuron="lif"`` only): the LIF surrogate gradient by name
  (``"triangle"``, the default, ``"sigmoid"``, ``"atan"``, ``"fast-sigmoid"``; E7), recorded in
  ``config`` only when given.

Every builder returns a :class:`SpikingNet` whose ``config`` records the builder and
its arguments, so :func:`build_model` can rebuild it from a checkpoint.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor
from ..neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF
from ..layers.basic import Flatten
from ..module import Module, Sequential
from ..layers.norm import BatchNorm2d
from ..layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from ..layers.seca import SECA1, SECA2, CurrentTap
from ..layers.synapses import Conv2d, Linear, _check_weight_mode

NEURONS = ("lif", "hdlif", "parallel", "membn")
SECA_KINDS = (None, "I", "II")
BN_STATS = ("per_step", "shared")
BN_MOMENTUM = 0.1  # PyTorch's default, per update of a set of running statistics


def parallel_layers(count: int, fraction: float) -> list[bool]:
    """Which of ``count`` neuron layers (in depth order) become Parallel HD-LIF.

    Layer ``i`` (0-based) is Parallel iff ``floor((i + 1) f) > floor(i f)``: the chosen
    layers are spread evenly, ``floor(count * f)`` of them, the first one as late as
    possible. With ``f = 0.5`` these are the odd layers: in a ResNet (stem neuron, then
    two neurons per block) exactly the first neuron of every block, whose membrane
    does not carry the residual sum.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"parallel_fraction={fraction!r} must be in [0, 1]")
    return [int((i + 1) * fraction) > int(i * fraction) for i in range(count)]


class NeuronFactory:
    """Creates the network's neuron layers in depth order, applying the options above."""

    def __init__(self, neuron: str, T: int, parallel_fraction: float, spike_bits: int | None,
                 per_channel: bool, seca: str | None, count: int, bn_stats: str = "per_step",
                 surrogate: str | None = None):
        if neuron not in NEURONS:
            raise ValueError(f"neuron={neuron!r}; allowed: {', '.join(NEURONS)}")
        if surrogate is not None and neuron != "lif":
            raise ValueError(f"surrogate={surrogate!r} applies to neuron='lif' (the others have exact gradients), "
                             f"not neuron={neuron!r}")
        self.surrogate = surrogate
        if seca not in SECA_KINDS:
            raise ValueError(f"seca={seca!r}; allowed: None, 'I', 'II'")
        if parallel_fraction and neuron not in ("hdlif", "membn"):
            raise ValueError(f"parallel_fraction={parallel_fraction} applies to neuron='hdlif' or 'membn', "
                             f"not neuron={neuron!r}")
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
            raise ValueError(f"T={T!r} must be a positive integer")
        if bn_stats not in BN_STATS:
            raise ValueError(f"bn_stats={bn_stats!r}; allowed: {', '.join(BN_STATS)}")
        self.bn_stats = bn_stats
        self.neuron, self.T, self.spike_bits, self.per_channel, self.seca = neuron, int(T), spike_bits, per_channel, seca
        self.parallel = [True] * count if neuron == "parallel" else parallel_layers(count, parallel_fraction)
        self.index = 0
        self.last_tap: CurrentTap | None = None

    def batch_norm(self, channels: int) -> BatchNorm2d:
        """A synapse's batch norm: per-step running statistics ``[T, C]`` unless ``bn_stats="shared"`` (E16 DC).

        Shared statistics take ``T`` updates per batch, a per-step row one: the per-step rows get
        momentum ``1 - (1 - 0.1)^T``, so that they forget at the rate per batch that the shared
        statistics did with PyTorch's 0.1 (with 0.1 a row still weighs its initial 0/1 by 31% after
        11 batches: docs/spec-notes.md, E16, has the measurement).
        """
        if self.bn_stats == "shared":
            return BatchNorm2d(channels, momentum=BN_MOMENTUM)
        return BatchNorm2d(channels, momentum=1.0 - (1.0 - BN_MOMENTUM) ** self.T, per_step=True, T=self.T)

    def input_bits(self) -> int:
        """Bit width of the spikes these neurons emit (what the next synapse receives)."""
        if self.neuron == "lif":
            return 1
        return self.spike_bits if self.spike_bits else 32

    def attention(self, bn: BatchNorm2d, rng) -> Module | None:
        """The SECA module after the batch norm ``bn`` of a synapse (before this factory's next neuron).

        DC (docs/models.md): a SECA gate starts near ``sigmoid(0) = 0.5`` and would halve the
        current every neuron sees, silencing deep layers at the start of training; the batch
        norm in front of a gate is therefore initialized with weight 2 instead of 1, so the
        network starts with the same current scale as without SECA. SPEC E14/E15 unchanged.
        """
        if self.seca is None:
            return None
        channels = bn.num_features
        bn.weight.data[...] = 2.0
        if self.seca == "I" or self.last_tap is None:
            return SECA1(channels, rng=rng)  # the stem has no previous neuron layer: SECA_I there
        return SECA2(self.last_tap_channels, channels, rng=rng).attach(self.last_tap)

    def __call__(self, channels: int) -> Module:
        if self.index >= len(self.parallel):
            raise RuntimeError("NeuronFactory: more neuron layers requested than counted")
        parallel = self.parallel[self.index]
        self.index += 1
        common = dict(spike_bits=self.spike_bits, per_channel=self.per_channel,
                      channels=channels if self.per_channel else None)
        if parallel:
            neuron = ParallelHDLIF(self.T, **common)
        elif self.neuron == "lif":
            neuron = LIF(self.T, surrogate=self.surrogate or "triangle", **common)
        elif self.neuron == "membn":
            neuron = MemBNHDLIF(self.T, channels, spike_bits=self.spike_bits, per_channel=self.per_channel)
        else:
            neuron = HDLIF(self.T, **common)
        if self.seca == "II":
            tap = CurrentTap()
            self.last_tap, self.last_tap_channels = tap, channels
            return Sequential(tap, neuron)
        return neuron


def conv_bn(cin: int, cout: int, kernel: int, stride: int, padding: int, weight_mode: str, rng,
            factory: NeuronFactory, analog_input: bool = False) -> list[Module]:
    """A synapse and its batch norm; the factory says what the input carries and how BN keeps statistics."""
    conv = Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False,
                  weight_mode="fp32" if analog_input else weight_mode, rng=rng)
    conv.input_is_spikes = not analog_input
    conv.input_bits = 32 if analog_input else factory.input_bits()
    return [conv, factory.batch_norm(cout)]


class BasicBlock(Module):
    """Spiking ResNet basic block: ``conv-BN-[SECA]-neuron-conv-BN-[SECA]``, ``+ shortcut``, neuron."""

    def __init__(self, cin: int, cout: int, stride: int, factory: NeuronFactory, weight_mode: str, rng):
        super().__init__()
        parts = conv_bn(cin, cout, 3, stride, 1, weight_mode, rng, factory)
        seca = factory.attention(parts[-1], rng)
        self.branch1 = Sequential(*parts, *([seca] if seca else []), factory(cout))
        parts = conv_bn(cout, cout, 3, 1, 1, weight_mode, rng, factory)
        seca = factory.attention(parts[-1], rng)
        self.branch2 = Sequential(*parts, *([seca] if seca else []))
        if stride != 1 or cin != cout:
            self.shortcut = Sequential(*conv_bn(cin, cout, 1, stride, 0, weight_mode, rng, factory))
        else:
            self.shortcut = None
        self.neuron = factory(cout)

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.neuron(self.branch2(self.branch1(x)) + residual)


class SpikingNet(Module):
    """A built network: ``features`` then ``classifier``; ``config`` rebuilds it (:func:`build_model`)."""

    def __init__(self, features: Module, classifier: Module, T: int, config: dict[str, Any]):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.T = T
        self.config = config

    def forward(self, x: Tensor) -> Tensor:
        """One step ``[N, C, H, W] -> [N, classes]`` (mode ``"s"``) or ``[T, N, ...] -> [T, N, classes]`` (``"m"``)."""
        return self.classifier(self.features(x))

    def neurons(self) -> list[Module]:
        """The neuron layers, in depth order."""
        return [m for m in self.modules() if isinstance(m, (HDLIF, LIF, ParallelHDLIF, MemBNHDLIF))]


def _common(neuron, T, parallel_fraction, weight_mode, spike_bits, seca, per_channel, num_classes):
    _check_weight_mode("model", weight_mode)
    if spike_bits is not None and (isinstance(spike_bits, bool) or not isinstance(spike_bits, (int, np.integer))
                                   or spike_bits < 1):
        raise ValueError(f"spike_bits={spike_bits!r} must be a positive integer or None")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be an integer >= 2")


RESNET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 19: (3, 3, 2)}


def spiking_resnet(depth: int = 18, stem: str = "cifar", num_classes: int = 10, width: float = 1.0,
                   in_channels: int = 3, T: int = 4, neuron: str = "hdlif", parallel_fraction: float = 0.0,
                   weight_mode: str = "fp32", spike_bits: int | None = None, seca: str | None = None,
                   per_channel: bool = False, bn_stats: str = "per_step",
                   rng: np.random.Generator | None = None, surrogate: str | None = None) -> SpikingNet:
    """Spiking ResNet-18/34 (stages of 64-512 channels) or ResNet-19 (128-512, as in TDBN).

    ``stem="cifar"``: 3x3 conv, stride 1. ``stem="imagenet"``: 7x7 conv stride 2, then
    3x3 max pooling stride 2. Classifier: global average pooling and one linear layer
    (ResNet-19: a 256-unit hidden linear layer with a neuron first).
    """
    config = dict(builder="spiking_resnet", depth=depth, stem=stem, num_classes=num_classes, width=width,
                  in_channels=in_channels, T=T, neuron=neuron, parallel_fraction=parallel_fraction,
                  weight_mode=weight_mode, spike_bits=spike_bits, seca=seca, per_channel=per_channel,
                  bn_stats=bn_stats)
    if surrogate is not None:
        config["surrogate"] = surrogate
    if depth not in RESNET_STAGES:
        raise ValueError(f"depth={depth!r}; allowed: 18, 19, 34")
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"stem={stem!r}; allowed: 'cifar', 'imagenet'")
    if not width > 0:
        raise ValueError(f"width={width!r} must be positive")
    _common(neuron, T, parallel_fraction, weight_mode, spike_bits, seca, per_channel, num_classes)
    rng = np.random.default_rng() if rng is None else rng
    stages = RESNET_STAGES[depth]
    base = (128, 256, 512) if depth == 19 else (64, 128, 256, 512)
    channels = [max(1, int(round(c * width))) for c in base]
    stem_channels = channels[0]
    count = 1 + 2 * sum(stages) + (1 if depth == 19 else 0)
    factory = NeuronFactory(neuron, T, parallel_fraction, spike_bits, per_channel, seca, count, bn_stats, surrogate)

    if stem == "cifar":
        layers: list[Module] = conv_bn(in_channels, stem_channels, 3, 1, 1, weight_mode, rng, factory,
                                       analog_input=True)
    else:
        layers = conv_bn(in_channels, stem_channels, 7, 2, 3, weight_mode, rng, factory, analog_input=True)
    attention = factory.attention(layers[-1], rng)
    layers += [attention] if attention else []
    layers.append(factory(stem_channels))
    if stem == "imagenet":
        layers.append(MaxPool2d(3, 2, 1))
    cin = stem_channels
    for stage, (blocks, cout) in enumerate(zip(stages, channels)):
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            layers.append(BasicBlock(cin, cout, stride, factory, weight_mode, rng))
            cin = cout
    layers += [AdaptiveAvgPool2d(1), Flatten()]
    if depth == 19:
        hidden = Linear(cin, 256, weight_mode=weight_mode, rng=rng)
        hidden.input_bits = factory.input_bits()
        layers += [hidden, factory(256)]
        cin = 256
    classifier = Linear(cin, num_classes, rng=rng)  # float32 (SPEC E12 DC)
    classifier.input_bits = factory.input_bits()
    return SpikingNet(Sequential(*layers), classifier, T, config)


VGG_CFG = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
DIGITS_CFG = (16, 32, "A", 64, "A")


def _plain_net(cfg: tuple, config: dict, rng: np.random.Generator | None) -> SpikingNet:
    """A VGG-style stack: every int is a 3x3 conv-BN-[SECA]-neuron layer with that many channels
    (times ``width``), every ``"A"`` a 2x2 average pooling; then flatten and one linear classifier."""
    c = config
    pools = cfg.count("A")
    if c["input_size"] % 2 ** pools:
        raise ValueError(f"input_size={c['input_size']!r} must be a multiple of {2 ** pools} "
                         f"({pools} 2x2 poolings)")
    _common(c["neuron"], c["T"], c["parallel_fraction"], c["weight_mode"], c["spike_bits"], c["seca"],
            c["per_channel"], c["num_classes"])
    rng = np.random.default_rng() if rng is None else rng
    convs = [item for item in cfg if item != "A"]
    factory = NeuronFactory(c["neuron"], c["T"], c["parallel_fraction"], c["spike_bits"], c["per_channel"],
                            c["seca"], len(convs), c["bn_stats"], c.get("surrogate"))
    layers: list[Module] = []
    cin, first = c["in_channels"], True
    for item in cfg:
        if item == "A":
            layers.append(AvgPool2d(2))
            continue
        cout = max(1, int(round(item * c["width"])))
        layers += conv_bn(cin, cout, 3, 1, 1, c["weight_mode"], rng, factory, analog_input=first)
        attention = factory.attention(layers[-1], rng)
        layers += [attention] if attention else []
        layers.append(factory(cout))
        cin, first = cout, False
    layers.append(Flatten())
    classifier = Linear(cin * (c["input_size"] // 2 ** pools) ** 2, c["num_classes"], rng=rng)  # float32
    classifier.input_bits = factory.input_bits()
    return SpikingNet(Sequential(*layers), classifier, c["T"], config)


def vgg_snn(num_classes: int = 10, in_channels: int = 2, input_size: int = 48, width: float = 1.0, T: int = 10,
            neuron: str = "hdlif", parallel_fraction: float = 0.0, weight_mode: str = "fp32",
            spike_bits: int | None = None, seca: str | None = None, per_channel: bool = False,
            bn_stats: str = "per_step", rng: np.random.Generator | None = None,
            surrogate: str | None = None) -> SpikingNet:
    """VGG-SNN for DVS-CIFAR10: 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2-FC."""
    config = dict(builder="vgg_snn", num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                  width=width, T=T, neuron=neuron, parallel_fraction=parallel_fraction, weight_mode=weight_mode,
                  spike_bits=spike_bits, seca=seca, per_channel=per_channel, bn_stats=bn_stats)
    if surrogate is not None:
        config["surrogate"] = surrogate
    return _plain_net(VGG_CFG, config, rng)


def digits_net(num_classes: int = 10, in_channels: int = 1, input_size: int = 8, width: float = 1.0, T: int = 4,
               neuron: str = "hdlif", parallel_fraction: float = 0.0, weight_mode: str = "fp32",
               spike_bits: int | None = None, seca: str | None = None, per_channel: bool = False,
               bn_stats: str = "per_step", rng: np.random.Generator | None = None,
               surrogate: str | None = None) -> SpikingNet:
    """A small conv SNN for 8x8 (or 16x16) inputs: 16C3-32C3-AP2-64C3-AP2-FC (channels times ``width``)."""
    config = dict(builder="digits_net", num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                  width=width, T=T, neuron=neuron, parallel_fraction=parallel_fraction, weight_mode=weight_mode,
                  spike_bits=spike_bits, seca=seca, per_channel=per_channel, bn_stats=bn_stats)
    if surrogate is not None:
        config["surrogate"] = surrogate
    return _plain_net(DIGITS_CFG, config, rng)


BUILDERS = {"spiking_resnet": spiking_resnet, "vgg_snn": vgg_snn, "digits_net": digits_net}


def build_model(config: dict[str, Any], rng: np.random.Generator | None = None) -> SpikingNet:
    """Rebuild a network from ``SpikingNet.config`` (e.g. read back from a checkpoint)."""
    config = dict(config)
    config.setdefault("bn_stats", "shared")  # written before per-step statistics (E16 DC) existed
    name = config.pop("builder", None)
    if name not in BUILDERS:
        raise ValueError(f"model config names builder={name!r}; allowed: {', '.join(BUILDERS)}")
    try:
        return BUILDERS[name](**config, rng=rng)
    except TypeError as exc:
        raise ValueError(f"model config for {name}: {exc}") from None
