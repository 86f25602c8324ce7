"""Whole-network golden cases (SPEC section 7, kind ``model``), the architecture document and ``training_step``."""
import copy
import json

import numpy as np
import pytest

from hdlif_ref.layers import SECA1, SECA2
from hdlif_ref.models import digits_net
from hdlif_ref.neurons import MemBNHDLIF, ParallelHDLIF
from hdlif_ref.oracle import check, read_golden, training_step, write
from hdlif_ref.oracle.arch import ArchError, build, describe
from hdlif_ref.oracle.check import check_case
from hdlif_ref.oracle.model_case import _perturb, resnet_small, vgg_small


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "models.h5"
    write(path, cases=["model"])
    return path, {c.name: c for c in read_golden(path, isolate=False).cases}


def batch(seed=0, n=4):
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 1.0, (n, 2, 8, 8)), rng.integers(0, 3, n)


@pytest.mark.parametrize("make", [vgg_small, resnet_small])
def test_the_networks_hold_every_feature_the_issue_names(make):
    net = make(np.random.default_rng(0))
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"MemBNHDLIF", "ParallelHDLIF", "SpikeQuantizer"} <= kinds and kinds & {"SECA1", "SECA2"}
    assert any(getattr(m, "weight_mode", None) == "ternary" for m in net.modules())
    assert all(m.spike_bits == 4 for m in net.modules() if isinstance(m, (MemBNHDLIF, ParallelHDLIF)))
    assert net.T == 4
    if make is vgg_small:
        seca2 = [m for m in net.modules() if isinstance(m, SECA2)]
        assert {(m.c_pre, m.c_post) for m in seca2} == {(4, 8), (8, 16)} and any(isinstance(m, SECA1)
                                                                                 for m in net.modules())


@pytest.mark.parametrize("make", [vgg_small, resnet_small])
def test_the_architecture_document_rebuilds_the_same_network(make):
    """describe -> JSON -> build: the same state_dict keys and, loaded with the same state, the same logits,
    losses and gradients (STBP and online) as the builder's network."""
    net = make(np.random.default_rng(1)).to(np.float64)
    doc = json.loads(json.dumps(describe(net, (2, 8, 8), 3)))
    rebuilt = build(doc)
    assert list(rebuilt.state_dict()) and set(rebuilt.state_dict()) == set(net.state_dict())
    rebuilt.load_state_dict(net.state_dict())
    x, y = batch(2)
    for method, steps in (("stbp", "all"), ("online", [2, 3])):
        loss_a, grads_a = training_step(net, x, y, method=method, steps=steps)
        loss_b, grads_b = training_step(rebuilt, x, y, method=method, steps=steps)
        assert loss_a == loss_b
        for name in grads_a:
            np.testing.assert_array_equal(grads_a[name], grads_b[name], err_msg=f"{method} {name}")


def test_training_step_changes_nothing_and_names_grads_by_state_dict_keys():
    net = vgg_small(np.random.default_rng(3)).to(np.float64)
    before = copy.deepcopy(net.state_dict())
    x, y = batch(4)
    loss, grads = training_step(net, x, y, method="online", steps=[1, 4])
    assert set(grads) == {name for name, _ in net.named_parameters()} and np.isfinite(loss)
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())  # buffers restored too
    assert all(p.grad is None for p in net.parameters())
    _, kept = training_step(net, x, y, method="stbp", update_buffers=True)
    assert any(not np.array_equal(before[k], v) for k, v in net.state_dict().items() if "running" in k)
    with pytest.raises(ValueError, match="method='bptt'; allowed: stbp, online"):
        training_step(net, x, y, method="bptt")
    with pytest.raises(ValueError, match=r"steps=\[0, 2\]; allowed: 'all' or distinct 1-based step numbers in 1..4"):
        training_step(net, x, y, method="online", steps=[0, 2])
    with pytest.raises(ValueError, match="steps= applies to method='online'"):
        training_step(net, x, y, method="stbp", steps=[1])


def test_online_gradients_are_the_per_step_sum_of_e16_and_differ_from_stbp():
    """E16: with S = {s_1, ..., s_k}, the online gradient is (1/k) times the sum over t in S of the
    gradient of CE(o_t) with every u_{t-1} detached; here each term comes from its own training_step."""
    net = resnet_small(np.random.default_rng(5)).to(np.float64)
    _perturb(net, np.random.default_rng(6))  # Mem-BN's beta = 0 at init would zero its BN's gradients
    x, y = batch(6)
    S = [1, 3, 4]
    _, online = training_step(net, x, y, method="online", steps=S)
    parts = [training_step(net, x, y, method="online", steps=[t])[1] for t in S]
    _, stbp = training_step(net, x, y, method="stbp")
    for name, g in online.items():
        np.testing.assert_allclose(g, sum(p[name] for p in parts) / len(S), rtol=1e-10, atol=1e-13, err_msg=name)
    assert all(not np.allclose(online[n], stbp[n]) for n in online)


def test_the_written_model_cases(models):
    path, cases = models
    report = check(path, isolate=False)
    assert report.verdict == "PASS" and len(report.cases) == 2
    for case in cases.values():
        f = case.fields
        params = [k[len("inputs/params/"):] for k in f if k.startswith("inputs/params/")]
        assert params and all(f"grads_stbp/{p}" in f and f"grads_online/{p}" in f and f"params_after/{p}" in f
                              for p in params)
        assert f["outputs/logits"].shape == (4, 4, 3) and f["outputs/loss_stbp"].shape == ()
        assert f["inputs/y"].dtype.kind == "i" and case.attrs["T"] == 4
        assert json.loads(case.attrs["arch"])["format"] == "hdlif-arch"
        moved = [p for p in params if not np.allclose(f[f"params_after/{p}"], f[f"inputs/params/{p}"])]
        assert len(moved) == len(params)  # every parameter gets a gradient and moves
        assert not np.allclose(f["outputs/logits"][0], f["outputs/logits"][-1])  # the steps differ


def test_params_after_are_two_sgd_steps_by_hand(models):
    """``params_after`` of the STBP-mode case from torch.optim.SGD's equations, written out here, with the
    gradients of each step from training_step on the network rebuilt from the file."""
    _, cases = models
    case = cases["model_vgg_small"]
    sgd = case.group_attrs["params_after"]
    assert sgd["mode"] == "stbp" and sgd["momentum"] > 0 and sgd["weight_decay"] > 0
    net = build(case.attrs["arch"])
    state = {k.split("/", 2)[2]: v for k, v in case.fields.items() if k.startswith(("inputs/params/", "inputs/buffers/"))}
    net.load_state_dict(state)
    x, y = case.fields["inputs/x"], case.fields["inputs/y"]
    w = {k: v.copy() for k, v in state.items() if k in dict(net.named_parameters())}
    buf = {}
    for _ in range(int(sgd["steps"])):
        _, grads = training_step(net, x, y, method="stbp", update_buffers=True)
        for k in w:
            d = grads[k] + sgd["weight_decay"] * w[k]
            buf[k] = d if k not in buf else sgd["momentum"] * buf[k] + d
            w[k] = w[k] - sgd["lr"] * buf[k]
        net.load_state_dict(w, strict=False)
    for k, v in w.items():
        np.testing.assert_allclose(case.fields[f"params_after/{k}"], v, rtol=1e-10, atol=1e-12, err_msg=k)


def test_a_broken_model_case_fails_that_case_naming_the_problem(models):
    _, cases = models
    case = cases["model_resnet_small"]
    fields = dict(case.fields)
    key = next(k for k in fields if k.startswith("inputs/params/"))
    del fields[key]
    report = check_case(type(case)(case.name, case.attrs, fields, case.group_attrs))
    assert report.status == "FAIL" and f"missing: {key}" in report.problems[0]
    doc = json.loads(case.attrs["arch"])
    doc["nodes"][0]["type"] = "conv3d"
    report = check_case(type(case)(case.name, dict(case.attrs, arch=json.dumps(doc)), case.fields, case.group_attrs))
    assert "unknown node type 'conv3d'" in report.problems[0] and "features.0" in report.problems[0]
    report = check_case(type(case)(case.name, dict(case.attrs, online_steps=[3, 1]), case.fields, case.group_attrs))
    assert "online_steps=[3, 1] must be increasing" in report.problems[0]
    report = check_case(type(case)(case.name, case.attrs, case.fields, {}))
    assert "group params_after has no attrs" in report.problems[0]
    with pytest.raises(ArchError, match="format='hdlif-arch', version=1"):
        build({"format": "other"})


def test_describe_refuses_what_the_format_cannot_say():
    net = digits_net(T=2, width=0.25, rng=np.random.default_rng(0))
    net.features[0].groups = 2  # pretend: the format has groups = 1 only
    with pytest.raises(ArchError, match="groups=2"):
        describe(net, (1, 8, 8), 10)
