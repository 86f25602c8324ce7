"""Model builders: structure, options, the parallel-fraction rule, rebuild from config, errors."""
import numpy as np
import pytest

from hdlif_ref.autograd import Tensor
from hdlif_ref.layers import SECA1, SECA2, Conv2d, Linear
from hdlif_ref.models import build_model, digits_net, parallel_layers, spiking_resnet, vgg_snn
from hdlif_ref.neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF


def rng():
    return np.random.default_rng(0)


def test_parallel_rule_spreads_layers_evenly():
    assert parallel_layers(5, 0.0) == [False] * 5
    assert parallel_layers(5, 1.0) == [True] * 5
    assert parallel_layers(6, 0.5) == [False, True] * 3
    assert sum(parallel_layers(17, 0.5)) == 8 and sum(parallel_layers(10, 0.3)) == 3
    with pytest.raises(ValueError, match=r"parallel_fraction=1.5 must be in \[0, 1\]"):
        parallel_layers(3, 1.5)


def test_half_parallel_resnet_makes_the_first_neuron_of_every_block_parallel():
    model = spiking_resnet(18, parallel_fraction=0.5, width=0.125, rng=rng())
    kinds = [type(n).__name__ for n in model.neurons()]
    assert len(kinds) == 17
    assert kinds == ["HDLIF"] + ["ParallelHDLIF", "HDLIF"] * 8
    for block in [m for m in model.modules() if type(m).__name__ == "BasicBlock"]:
        assert isinstance(block.branch1[-1], ParallelHDLIF) and isinstance(block.neuron, HDLIF)


@pytest.mark.parametrize("neuron, cls", [("lif", LIF), ("hdlif", HDLIF), ("parallel", ParallelHDLIF),
                                         ("membn", MemBNHDLIF)])
def test_neuron_kind_option(neuron, cls):
    model = digits_net(neuron=neuron, rng=rng())
    assert all(type(n) is cls for n in model.neurons()) and len(model.neurons()) == 3


def test_first_layer_and_classifier_stay_float32_under_ternary_synapses():
    model = spiking_resnet(18, width=0.125, weight_mode="ternary", rng=rng())
    synapses = [m for m in model.modules() if isinstance(m, (Conv2d, Linear))]
    assert synapses[0].weight_mode == "fp32" and not synapses[0].input_is_spikes
    assert model.classifier.weight_mode == "fp32"
    assert all(s.weight_mode == "ternary" and s.input_is_spikes for s in synapses[1:-1])


def test_spike_bits_and_input_bits():
    model = digits_net(spike_bits=4, rng=rng())
    assert all(n.spike_bits == 4 for n in model.neurons())
    assert [m.input_bits for m in model.modules() if isinstance(m, (Conv2d, Linear))][1:] == [4, 4, 4]
    assert [m.input_bits for m in digits_net(neuron="lif", rng=rng()).modules()
            if isinstance(m, Linear)] == [1]


def test_seca_options_place_attention_before_every_neuron():
    seca1 = digits_net(seca="I", rng=rng())
    assert sum(isinstance(m, SECA1) for m in seca1.modules()) == 3
    seca2 = digits_net(seca="II", rng=rng())
    kinds = [type(m).__name__ for m in seca2.modules() if isinstance(m, (SECA1, SECA2))]
    assert kinds == ["SECA1", "SECA2", "SECA2"]  # the first layer has no previous neuron layer
    out = seca2(Tensor(np.ones((2, 1, 8, 8), np.float32)))
    assert out.shape == (2, 10)
    # DC: the batch norm feeding a gate starts at weight 2 (the gate starts near 0.5); others at 1
    modules = list(seca1.features)
    for i, m in enumerate(modules):
        if type(m).__name__ == "BatchNorm2d":
            expected = 2.0 if isinstance(modules[i + 1], SECA1) else 1.0
            assert np.all(m.weight.data == expected)
    assert all(np.all(m.weight.data == 1.0) for m in digits_net(rng=rng()).modules()
               if type(m).__name__ == "BatchNorm2d")


@pytest.mark.parametrize("build, shape, classes", [
    (lambda: digits_net(T=2, rng=rng()), (3, 1, 8, 8), 10),
    (lambda: digits_net(in_channels=2, input_size=16, num_classes=4, T=2, rng=rng()), (3, 2, 16, 16), 4),
    (lambda: spiking_resnet(18, width=0.125, num_classes=7, T=2, rng=rng()), (2, 3, 16, 16), 7),
    (lambda: spiking_resnet(19, width=0.0625, T=2, rng=rng()), (2, 3, 8, 8), 10),
    (lambda: spiking_resnet(34, stem="imagenet", width=0.0625, T=2, rng=rng()), (2, 3, 32, 32), 10),
    (lambda: vgg_snn(width=0.0625, input_size=16, T=2, rng=rng()), (2, 2, 16, 16), 10),
])
def test_builders_produce_logits_in_both_step_modes(build, shape, classes):
    model = build()
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    stepped = [model(Tensor(x)).data for _ in range(2)]
    model.reset_state().set_step_mode("m")
    whole = model(Tensor(np.stack([x, x]))).data
    assert whole.shape == (2, shape[0], classes)
    np.testing.assert_allclose(np.stack(stepped), whole, rtol=1e-4, atol=1e-5)


def test_build_model_rebuilds_the_same_architecture_from_config():
    model = digits_net(neuron="membn", weight_mode="ternary", spike_bits=4, seca="I", T=3, rng=rng())
    again = build_model(model.config, rng=np.random.default_rng(5))
    assert list(again.state_dict()) == list(model.state_dict())
    again.load_state_dict(model.state_dict())
    x = Tensor(np.ones((2, 1, 8, 8), np.float32))
    np.testing.assert_array_equal(model.eval()(x).data, again.eval()(x).data)
    with pytest.raises(ValueError, match="builder='mlp'"):
        build_model({"builder": "mlp"})


@pytest.mark.parametrize("build, message", [
    (lambda: digits_net(neuron="izhikevich"), r"neuron='izhikevich'; allowed: lif, hdlif, parallel, membn"),
    (lambda: digits_net(parallel_fraction=1.5), r"parallel_fraction=1.5 must be in \[0, 1\]"),
    (lambda: digits_net(neuron="lif", parallel_fraction=0.5), r"applies to neuron='hdlif' or 'membn'"),
    (lambda: digits_net(weight_mode="int2"), r"weight_mode='int2'; allowed: fp32, binary, ternary"),
    (lambda: digits_net(seca="III"), r"seca='III'; allowed: None, 'I', 'II'"),
    (lambda: digits_net(spike_bits=0), r"spike_bits=0 must be a positive integer or None"),
    (lambda: digits_net(input_size=10), r"input_size=10 must be a multiple of 4 \(2 2x2 poolings\)"),
    (lambda: vgg_snn(input_size=40), r"input_size=40 must be a multiple of 16 \(4 2x2 poolings\)"),
    (lambda: spiking_resnet(depth=50), r"depth=50; allowed: 18, 19, 34"),
    (lambda: spiking_resnet(stem="tiny"), r"stem='tiny'; allowed: 'cifar', 'imagenet'"),
    (lambda: digits_net(T=0), r"T=0 must be a positive integer"),
])
def test_builder_errors_list_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_wrong_input_shape_is_a_clear_error():
    model = digits_net(rng=rng())
    with pytest.raises(ValueError, match="channel"):
        model(Tensor(np.zeros((2, 3, 8, 8), np.float32)))


def test_surrogate_passes_through_to_every_lif_and_the_config():
    net = digits_net(neuron="lif", surrogate="atan", width=0.25, rng=np.random.default_rng(0))
    lifs = [m for m in net.neurons() if isinstance(m, LIF)]
    assert len(lifs) == 3 and all(m.surrogate == "atan" and m.gamma == 2.0 for m in lifs)
    assert [m.surrogate for m in build_model(net.config).neurons()] == ["atan"] * 3
    assert "surrogate" not in digits_net(neuron="lif", width=0.25).config  # configs without it are unchanged
    assert all(m.surrogate == "triangle" for m in digits_net(neuron="lif", width=0.25).neurons())
    with pytest.raises(ValueError, match="surrogate='atan' applies to neuron='lif'"):
        digits_net(neuron="hdlif", surrogate="atan")
    with pytest.raises(ValueError, match="surrogate='ste'; allowed"):
        digits_net(neuron="lif", surrogate="ste")
