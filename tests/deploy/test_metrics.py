"""Counters: SOPs against a brute-force count (SPEC E19), memory and NOPs against the paper (E18, E19), E20."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor
from hdlif_ref.deploy.metrics import (OpCounts, count_nops, count_ops, energy, energy_45nm, parameter_memory,
                                      synapse_ops)
from hdlif_ref.layers import BatchNorm2d, Conv2d, Linear
from hdlif_ref.models import digits_net, spiking_resnet


def brute_force_conv_sops(x, conv):
    """Every (non-zero input, synapse) pair, by walking every output position and kernel tap."""
    n, cin, h, w = x.shape
    kh, kw = conv.kernel_size
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    per_group_out = conv.out_channels // conv.groups
    per_group_in = cin // conv.groups
    count = 0
    for b in range(n):
        for co in range(conv.out_channels):
            group = co // per_group_out
            for ci in range(group * per_group_in, (group + 1) * per_group_in):
                for i in range(oh):
                    for j in range(ow):
                        for a in range(kh):
                            for c in range(kw):
                                y, z = i * sh - ph + a, j * sw - pw + c
                                if 0 <= y < h and 0 <= z < w and x[b, ci, y, z] != 0:
                                    count += 1
    return count


@settings(max_examples=25)
@given(st.integers(1, 2), st.sampled_from([(2, 4, 1), (4, 4, 2), (3, 6, 3)]), st.integers(1, 6), st.integers(1, 6),
       st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_e19_conv_sops_match_a_brute_force_count(n, channels, h, w, k, stride, pad, density, seed):
    cin, cout, groups = channels
    assume(k <= h + 2 * pad and k <= w + 2 * pad)  # a kernel that fits the padded input
    conv = Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
    rng = np.random.default_rng(seed)
    x = (rng.random((n, cin, h, w)) < density) * rng.integers(1, 16, (n, cin, h, w))  # multi-bit: still 1 SOP
    used, every = synapse_ops(conv, x.astype(np.float32), "s")
    assert used == brute_force_conv_sops(x, conv)
    assert every == brute_force_conv_sops(np.ones_like(x), conv)


def test_e19_linear_sops_count_non_zero_inputs_times_fan_out():
    x = np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 2.0]], dtype=np.float32)
    assert synapse_ops(Linear(3, 4), x, "s") == (3 * 4, 6 * 4)


def test_count_ops_sums_layers_over_steps_per_sample():
    model = digits_net(T=3, weight_mode="ternary", rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((4, 1, 8, 8)).astype(np.float32)
    seen = []  # the inputs every synapse really received, captured independently of count_ops
    handles = [m.register_forward_hook(lambda mod, a, o: seen.append((mod, a[0].data.copy())))
               for m in model.modules() if isinstance(m, (Conv2d, Linear))]
    counts = count_ops(model, x)
    for h in handles:
        h.remove()
    first = [m for m in model.modules() if isinstance(m, Conv2d)][0]
    sops = sum(synapse_ops(m, inp, "s")[0] for m, inp in seen if m is not first) / 4
    macs = sum(synapse_ops(m, inp, "s")[1] for m, inp in seen if m is first) / 4
    assert len(seen) == 3 * 4  # 3 convs + classifier, 3 steps
    assert counts.sops == pytest.approx(sops) and counts.macs == pytest.approx(macs)
    # NOPs: HD-LIF neurons of the three layers (16*8*8 + 32*8*8 + 64*4*4 per step), 1 MUL + 2 ADD each
    neurons = 16 * 64 + 32 * 64 + 64 * 16
    assert (counts.nop_mul, counts.nop_add) == (neurons * 3, 2 * neurons * 3)


def test_e20_energy_arithmetic_of_the_papers_lif_row():
    # 273.02 M SOPs x 0.9 pJ = 0.245718 mJ (SPEC E20 check)
    assert energy_45nm(sops=273.02e6) * 1e3 == pytest.approx(0.245718, rel=1e-12)
    e = energy_45nm(sops=1, macs=1, nop_mul=1, nop_add=1)
    assert e == pytest.approx((0.9 + 4.6 + 3.7 + 0.9) * 1e-12)
    bits = OpCounts(sops=10, sops_by_bits={4: 6, 32: 4})
    assert energy(bits, "bitwidth") == pytest.approx((6 * 0.1 + 4 * 0.9) * 1e-12)
    with pytest.raises(ValueError, match="table='7nm'"):
        energy(bits, "7nm")


@pytest.mark.parametrize("classes, fp32_mb, ternary_mb", [(10, 44.66, 2.82), (100, 44.84, 3.00)])
def test_e18_resnet18_parameter_memory_matches_the_paper(classes, fp32_mb, ternary_mb):
    """The paper's network keeps one set of BN statistics for all steps (``bn_stats="shared"``)."""
    fp32 = parameter_memory(spiking_resnet(18, num_classes=classes, bn_stats="shared", rng=np.random.default_rng(0)))
    ternary = parameter_memory(spiking_resnet(18, num_classes=classes, weight_mode="ternary", bn_stats="shared",
                                              rng=np.random.default_rng(0)))
    assert fp32["megabytes"] == pytest.approx(fp32_mb, rel=0.01)
    assert ternary["megabytes"] == pytest.approx(ternary_mb, rel=0.03)


def test_e18_per_step_batch_norm_counts_its_deployed_per_step_scale_and_shift():
    """SPEC E16 DC: per-step statistics deploy as a [T, C] scale and a [T, C] shift (2 T C float32)."""
    T, C = 4, 8
    shared = parameter_memory(BatchNorm2d(C))["bytes"]
    per_step = parameter_memory(BatchNorm2d(C, per_step=True, T=T))["bytes"]
    assert shared == 2 * C * 4 and per_step == 2 * T * C * 4
    per_step_net = parameter_memory(digits_net(T=T, rng=np.random.default_rng(0)))["bytes"]
    shared_net = parameter_memory(digits_net(T=T, bn_stats="shared", rng=np.random.default_rng(0)))["bytes"]
    assert per_step_net - shared_net == 2 * (T - 1) * (16 + 32 + 64) * 4  # three conv-BN layers


def test_e18_counts_bits_per_weight_mode():
    for mode, bits in (("fp32", 32), ("binary", 1), ("ternary", 2)):
        conv = Conv2d(4, 8, 3, bias=True, weight_mode=mode)
        expected = 8 * 4 * 9 * bits / 8 + (8 * 4 if mode != "fp32" else 0) + 8 * 4  # weights, scales, bias
        assert parameter_memory(conv)["bytes"] == expected


@pytest.mark.slow
def test_e19_nops_of_resnet18_vanilla_versus_half_parallel():
    vanilla = count_nops(spiking_resnet(18, num_classes=100, rng=np.random.default_rng(0)), (3, 32, 32), T=4)
    half = count_nops(spiking_resnet(18, num_classes=100, parallel_fraction=0.5, rng=np.random.default_rng(0)),
                      (3, 32, 32), T=4)
    # neurons per step: 64x32x32 x 5 + 128x16x16 x 4 + 256x8x8 x 4 + 512x4x4 x 4 = 557,056; 3 NOPs each, T = 4
    assert vanilla.nops == 557_056 * 4 * 3
    reduction = 1 - half.nops / vanilla.nops
    print(f"NOPs T=4: vanilla {vanilla.nops / 1e6:.2f} M, 50% parallel {half.nops / 1e6:.2f} M "
          f"(-{reduction:.1%}); paper 6.59 M -> 4.62 M (-29.9%)")
    assert 0.25 <= reduction <= 0.40


@pytest.mark.parametrize("bits", list(range(1, 33)))
def test_e20_bitwidth_table_at_every_width(bits):
    """Every spike width alone: <= 8 bits is an int32 accumulation (0.1 pJ), wider an fp32 add (0.9 pJ); the
    other terms get counts that tell the constants apart (MAC = fp32 mul + add 4.6, NOP MUL 3.7, NOP ADD 0.9)."""
    counts = OpCounts(sops=1000.0, macs=10.0, nop_mul=100.0, nop_add=10000.0, sops_by_bits={bits: 1000.0})
    sop = 0.1 if bits <= 8 else 0.9
    assert energy(counts, "bitwidth") == pytest.approx((1000 * sop + 10 * 4.6 + 100 * 3.7 + 10000 * 0.9) * 1e-12,
                                                       rel=1e-12)


def test_e20_45nm_constants_cannot_be_permuted():
    """Counts 1, 10, 100, 1000 on SOP, MAC, NOP MUL, NOP ADD: any permutation of 0.9 / 4.6 / 3.7 / 0.9 pJ, or
    a wrong constant, changes the total (1 x 0.9 + 10 x 4.6 + 100 x 3.7 + 1000 x 0.9 = 1316.9 pJ)."""
    assert energy(OpCounts(sops=1.0, macs=10.0, nop_mul=100.0, nop_add=1000.0)) == pytest.approx(1316.9e-12,
                                                                                                rel=1e-12)
    assert energy_45nm(sops=1, macs=10, nop_mul=100, nop_add=1000) == pytest.approx(1316.9e-12, rel=1e-12)
