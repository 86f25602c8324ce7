"""The module system: registration, traversal, state_dict, modes, state reset/detach."""
import numpy as np
import pytest

from hdlif_ref.autograd import Tensor
from hdlif_ref.layers import Module, Parameter, Sequential


class Affine(Module):
    def __init__(self, n):
        super().__init__()
        self.weight = Parameter(np.arange(n, dtype=np.float32))
        self.bias = Parameter(np.zeros(n, dtype=np.float32))
        self.register_buffer("calls", np.zeros(1))
        self.register_buffer("scratch", np.ones(2), persistent=False)

    def forward(self, x):
        self.calls = self.calls + 1
        return x * self.weight + self.bias


class Counter(Module):
    """A stateful module: counts resets and detaches."""

    def __init__(self):
        super().__init__()
        self.resets = 0
        self.detaches = 0

    def _reset_own_state(self):
        self.resets += 1

    def _detach_own_state(self):
        self.detaches += 1

    def forward(self, x):
        return x


def net():
    return Sequential(Affine(3), Counter(), Sequential(Affine(3), Counter()))


def test_parameters_buffers_children_are_registered_in_order():
    m = net()
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]
    assert [n for n, _ in m.named_buffers()] == ["0.calls", "0.scratch", "2.0.calls", "2.0.scratch"]
    assert [type(c).__name__ for c in m.children()] == ["Affine", "Counter", "Sequential"]
    assert [n for n, _ in m.named_modules()] == ["", "0", "1", "2", "2.0", "2.1"]
    assert all(isinstance(p, Parameter) and p.requires_grad for p in m.parameters())


def test_shared_parameter_is_listed_once():
    a = Affine(2)
    b = Affine(2)
    b.weight = a.weight
    assert len(list(Sequential(a, b).parameters())) == 3


def test_state_dict_round_trip_copies_values_into_existing_arrays():
    src, dst = net(), net()
    for p in src.parameters():
        p.data[...] = np.random.default_rng(0).standard_normal(p.shape)
    state = src.state_dict()
    assert list(state) == ["0.weight", "0.bias", "0.calls", "2.0.weight", "2.0.bias", "2.0.calls"]
    weight_array = dst[0].weight.data
    dst.load_state_dict(state)
    assert dst[0].weight.data is weight_array  # in place: optimizers keep working
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    state["0.weight"][0] = 99.0  # a copy, not a view
    assert src[0].weight.data[0] != 99.0


def test_strict_loading_names_missing_unexpected_and_misshaped_keys():
    m = net()
    state = m.state_dict()
    del state["0.bias"]
    state["extra.weight"] = np.zeros(1)
    state["2.0.weight"] = np.zeros(4)
    with pytest.raises(ValueError) as err:
        m.load_state_dict(state)
    msg = str(err.value)
    assert "missing keys: 0.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "2.0.weight: checkpoint (4,), model (3,)" in msg
    del state["2.0.weight"]
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert missing == ["0.bias", "2.0.weight"] and unexpected == ["extra.weight"]


def test_train_eval_reach_every_module():
    m = net()
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_reset_and_detach_state_reach_every_stateful_module():
    m = net()
    m.reset_state()
    m.detach_state()
    m.detach_state()
    counters = [x for x in m.modules() if isinstance(x, Counter)]
    assert [(c.resets, c.detaches) for c in counters] == [(1, 2), (1, 2)]


def test_assigning_to_a_buffer_name_updates_the_buffer():
    a = Affine(2)
    a(Tensor(np.ones(2, np.float32)))
    np.testing.assert_array_equal(a.state_dict()["calls"], [1.0])


def test_to_casts_parameters_and_buffers():
    m = net().to(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert all(b.dtype == np.float64 for b in m.buffers())
    with pytest.raises(TypeError, match="float16"):
        m.to(np.float16)


def test_sequential_forward_repr_and_errors():
    m = net()
    out = m(Tensor(np.ones(3, np.float32)))
    np.testing.assert_array_equal(out.data, np.arange(3) ** 2)
    text = repr(m)
    assert "(0): Affine()" in text and "(2): Sequential(" in text
    with pytest.raises(TypeError, match="item 1 is int"):
        Sequential(Affine(1), 3)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        m.nope


def test_set_step_mode_reaches_every_module_and_checks_its_value():
    m = net()
    assert m.set_step_mode("m") is m
    assert all(x.step_mode == "m" for x in m.modules())
    with pytest.raises(ValueError, match=r"mode='x'; allowed: 's' \(single step\), 'm' \(multi step\)"):
        m.set_step_mode("x")


def test_forward_hooks_see_inputs_and_outputs_and_can_be_removed():
    m = Affine(2)
    seen = []
    handle = m.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].data.sum(), out.data.sum())))
    m(Tensor(np.ones(2, np.float32)))
    handle.remove()
    m(Tensor(np.ones(2, np.float32)))
    assert len(seen) == 1 and seen[0][0] is m and seen[0][1] == 2.0 and seen[0][2] == 1.0


def _mirror_holds(module):
    """Every registered name reads, by ordinary lookup, the very object its table holds (but a name the class
    defines, which keeps winning the lookup and gets no mirror)."""
    for m in module.modules():
        d = m.__dict__
        for table in (m._parameters, m._buffers, m._modules):
            for name, value in table.items():
                if hasattr(type(m), name):
                    assert name not in d, (type(m).__name__, name)
                    continue
                assert name in d and d[name] is value, (type(m).__name__, name)
                assert getattr(m, name) is value


def test_registered_values_are_mirrored_through_every_change(monkeypatch):
    m = Affine(3)
    seq = Sequential(m, Counter())
    _mirror_holds(seq)
    calls = []
    original = type(m).__getattr__
    monkeypatch.setattr(Module, "__getattr__", lambda self, name: calls.append(name) or original(self, name))
    m(Tensor(np.ones(3, dtype=np.float32)))  # reads weight, bias, calls
    assert calls == []  # ordinary lookups: __getattr__ is not reached
    monkeypatch.undo()
    m.weight = Parameter(np.ones(3, dtype=np.float32))  # replaced parameter
    m.calls = np.full(1, 7.0)  # assigned buffer
    m.register_buffer("extra", np.zeros(2))
    m.register_buffer("bias", np.zeros(3))  # a parameter's name becomes a buffer's
    assert "bias" not in m._parameters and m.bias is m._buffers["bias"]
    m.to(np.float64)
    _mirror_holds(seq)
    assert m.calls.dtype == np.float64 and m.calls is m._buffers["calls"]
    setattr(seq, "1", Affine(2))  # replaced child
    _mirror_holds(seq)
    m.weight = 5.0  # a parameter's name becomes a plain attribute
    assert "weight" not in m._parameters and m.weight == 5.0
    del m.extra
    assert "extra" not in m.__dict__ and not hasattr(m, "extra")
    _mirror_holds(seq)


def test_no_registered_name_of_a_built_network_is_shadowed_by_its_class():
    """A class attribute of the same name (a method, a property) would win over the mirror and the table alike;
    none of the builders' modules has one."""
    from hdlif_ref.models import digits_net, spiking_resnet
    for model in (digits_net(T=2, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0)),
                  spiking_resnet(18, width=0.125, T=2, seca="II", rng=np.random.default_rng(0))):
        _mirror_holds(model)
        for m in model.modules():
            for table in (m._parameters, m._buffers, m._modules):
                for name in table:
                    assert not hasattr(type(m), name), (type(m).__name__, name)


def test_a_registered_name_the_class_defines_leaves_the_class_attribute_in_place():
    """A child named like a method (an architecture document may name a node ``forward`` or ``eval``) is
    registered, listed and saved, but ``module.forward`` is still the method: as without the mirror, and as
    in PyTorch."""
    seq = Sequential(Affine(2))
    setattr(seq, "forward", Affine(2))
    setattr(seq, "eval", Affine(2))
    assert [name for name, _ in seq.named_children()] == ["0", "forward", "eval"]
    assert seq.forward.__func__ is Sequential.forward and seq.eval().training is False
    assert "forward.weight" in seq.state_dict()
    _mirror_holds(seq)


def test_a_shallow_copy_registers_on_its_own_tables():
    import copy
    m = Affine(3)
    clone = copy.copy(m)
    assert clone.weight is m.weight and clone._parameters is not m._parameters
    clone.weight = Parameter(np.ones(3, dtype=np.float32))
    clone.register_buffer("extra", np.zeros(1))
    assert m.weight is m._parameters["weight"] and m.weight is not clone.weight
    assert "extra" not in m._buffers and not hasattr(m, "extra")
    _mirror_holds(m)
    _mirror_holds(clone)
    assert [n for n, _ in clone.named_modules()] == [""] and next(iter(clone.modules())) is clone


def test_registering_over_a_plain_attribute_leaves_no_stale_value():
    class WithDefault(Module):
        bias = None  # a class default, as layers without a bias have

    m = WithDefault()
    m.extra = 5
    m.register_buffer("extra", np.zeros(2))
    assert m.extra is m._buffers["extra"]
    m.__dict__["bias"] = "stale"  # a plain value under the class attribute's name
    m.bias = Parameter(np.zeros(2, dtype=np.float32))
    assert "bias" not in m.__dict__ and m.bias is None and "bias" in m._parameters  # the class default wins
    _mirror_holds(m)
