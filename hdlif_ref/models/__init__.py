"""Model builders: spiking ResNet-18/19/34, VGG-SNN, the small digits network (docs/models.md).

One floor above :mod:`hdlif_ref.neurons` and :mod:`hdlif_ref.layers`, which they combine;
:func:`build_model` rebuilds a network from its ``config`` (checkpoints use it).
"""
from .builders import (BN_STATS, NEURONS, SECA_KINDS, BasicBlock, NeuronFactory, SpikingNet, build_model,
                       digits_net, parallel_layers, spiking_resnet, vgg_snn)

__all__ = ["SpikingNet", "BasicBlock", "NeuronFactory", "build_model", "digits_net", "spiking_resnet", "vgg_snn",
           "parallel_layers", "NEURONS", "SECA_KINDS", "BN_STATS"]
