"""The golden file describes itself: a PyTorch rebuild from the written file alone (skipped without torch).

Each case is read with plain h5py (not our reader) and rebuilt with ``torch.nn.functional``
and ``torch.autograd`` from SPEC sections 6-7 and the file's own attrs; whole networks
from the case's ``arch`` JSON (docs/golden.md), with ``torch.optim.SGD`` for the two
steps. Every field of every case must agree within the checker's float64 profile
(``rtol=1e-6, atol=1e-9``; models ``1e-5, 1e-8``). Nothing of ``hdlif_ref`` is used
except ``oracle.write`` to produce the file.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hdlif_ref.oracle import write  # noqa: E402

PROFILE = {"default": (1e-6, 1e-9), "model": (1e-5, 1e-8)}


def read_file(path):
    """``{name: (attrs, fields, group_attrs)}`` with plain h5py."""
    out = {}
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "hdlif-golden" and int(f.attrs["version"]) == 2
        for name, g in f["cases"].items():
            fields, group_attrs = {}, {}

            def visit(key, obj, fields=fields, group_attrs=group_attrs):
                if isinstance(obj, h5py.Dataset):
                    fields[key] = obj[()]
                elif len(obj.attrs):
                    group_attrs[key] = {k: _py(v) for k, v in obj.attrs.items()}
            g.visititems(visit)
            out[name] = ({k: _py(v) for k, v in g.attrs.items()}, fields, group_attrs)
    return out


def _py(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v.item() if isinstance(v, np.generic) else v


def t(x, grad=True):
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)


def pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(i) for i in v)


def per_step(p, t_, ndim):
    """Row ``t_`` of a ``[T]`` or ``[T, C]`` parameter, shaped to broadcast over ``[N, C, ...]``."""
    row = p[t_]
    return row if row.ndim == 0 else row.reshape((1, -1) + (1,) * (ndim - 2))


# ----------------------------------------------------------------------------- E1-E9 neurons
class TriangleSpike(torch.autograd.Function):
    """SPEC E7: forward ``H(x)`` (``H(0) = 1``), backward ``max(gamma - |x|, 0) / gamma^2``."""

    @staticmethod
    def forward(ctx, x, gamma):
        ctx.save_for_backward(x)
        ctx.gamma = gamma
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.clamp(ctx.gamma - x.abs(), min=0) / ctx.gamma ** 2, None


def p2_fire(v, theta):
    """E2 with ``H(0) = 1``: the surplus, whose derivative is 1 also at ``v = theta``."""
    return torch.where(v >= theta, v - theta, torch.zeros_like(v))


def neuron_case(kind, x, attrs):
    out = {}
    for group, online in (("grads_stbp", False), ("grads_online", True)):
        names = [k for k in x if k != "grad_s"]
        leaves = {k: t(x[k]) for k in names}
        I = leaves["I"]
        u = torch.zeros_like(I[0])
        rec = {"s": [], "u": [], "m": [], "mhat": []}
        for step in range(I.shape[0]):
            if online:
                u = u.detach()
            p = lambda k: per_step(leaves[k], step, I.ndim - 1)  # noqa: E731
            if kind == "parallel":
                rec["s"].append(p2_fire(I[step], p("theta")))
                continue
            m = p("lam") * u + I[step]
            if kind == "lif":
                s = TriangleSpike.apply(m - p("theta"), float(attrs["gamma"]))
                u = m * (1 - s) if attrs["reset"] == "hard" else m - p("theta") * s
            else:
                v = m
                if kind == "membn":
                    bn = F.batch_norm(m, None, None, leaves["bn_gamma"][step], leaves["bn_beta"][step], training=True,
                                      eps=float(attrs["bn_eps"]))
                    v = p("alpha") * m + p("beta") * bn
                    rec["mhat"].append(v)
                s = p2_fire(v, p("theta"))
                u = v - s
            rec["s"].append(s), rec["u"].append(u), rec["m"].append(m)
        outputs = {k: torch.stack(v) for k, v in rec.items() if v}
        (outputs["s"] * t(x["grad_s"], False)).sum().backward()
        out.update({f"{group}/{k}": v.grad for k, v in leaves.items()})
    out.update({f"outputs/{k}": v for k, v in outputs.items()})
    return out


# ----------------------------------------------------------------------------- E11-E15 and the layers
def quantized(w, mode):
    """E11/E12 with straight-through gradients (E11: times ``1[|w| <= 1]``); returns ``(w_q, codes, scale)``."""
    flat = w.detach().reshape(w.shape[0], -1)
    mean_abs = flat.abs().mean(dim=1)
    if mode == "binary":
        codes = torch.where(flat >= 0, 1.0, -1.0)
        scale = mean_abs
        mask = (w.detach().abs() <= 1).to(w.dtype)
    else:
        keep = flat.abs() > 0.7 * mean_abs[:, None]  # strict '>'
        codes = torch.sign(flat) * keep
        kept = keep.sum(dim=1)
        scale = torch.where(kept > 0, (flat.abs() * keep).sum(dim=1) / kept.clamp(min=1), torch.zeros_like(mean_abs))
        mask = torch.ones_like(w)
    value = (scale[:, None] * codes).reshape(w.shape)
    w_q = value + (w - w.detach()) * mask  # forward: value; backward: grad * mask
    return w_q, codes.reshape(w.shape).to(torch.int8), scale


def weight(w, mode):
    return w if mode in ("float", "fp32") else quantized(w, mode)[0]


class SpikeQuant(torch.autograd.Function):
    """E13 with the LSQ-style backward of SPEC (closed interval, no gradient scale)."""

    @staticmethod
    def forward(ctx, x, s, bits):
        qmax = 2 ** bits - 1
        v = x / s
        ctx.save_for_backward(x, s)
        ctx.qmax = qmax
        return s * torch.clamp(torch.round(v), 0, qmax)  # torch.round: half to even

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        v = x / s
        inside = (v >= 0) & (x <= s * ctx.qmax)
        above = x > s * ctx.qmax
        ds = torch.where(inside, torch.round(v) - v, torch.where(above, torch.full_like(v, ctx.qmax), 0 * v))
        return g * inside, (g * ds).sum().reshape(s.shape), None


def conv1d_channels(z, k):
    return F.conv1d(z[:, None, :], k.reshape(1, 1, -1), padding=k.shape[0] // 2)[:, 0, :]


def gap(v):
    return v.mean(dim=tuple(range(2, v.ndim))) if v.ndim > 2 else v


def channel_map(z, c_post):
    c_pre = z.shape[1]
    if c_pre > c_post:
        return z.reshape(z.shape[0], c_post, c_pre // c_post).mean(dim=2)
    if c_pre < c_post:
        return z.repeat_interleave(c_post // c_pre, dim=1)
    return z


def scale_channels(v, a):
    return v * a.reshape(a.shape + (1,) * (v.ndim - 2))


def layer_case(kind, x, attrs):
    leaves = {k: t(v) for k, v in x.items() if k != "grad_y"}
    out = {}
    if kind in ("conv2d", "linear"):
        w = weight(leaves["w"], attrs["weight"])
        y = F.conv2d(leaves["x"], w, leaves.get("b"), stride=pair(attrs["stride"]), padding=pair(attrs["padding"])) \
            if kind == "conv2d" else F.linear(leaves["x"], w, leaves.get("b"))
    elif kind == "batchnorm":
        mode = {"training": "train", "inference": "eval"}.get(attrs["mode"], attrs["mode"])
        if mode == "train":
            rm, rv = torch.tensor(x["running_mean"]), torch.tensor(x["running_var"])
            y = F.batch_norm(leaves["x"], rm, rv, leaves["gamma"], leaves["beta"], training=True,
                             momentum=float(attrs["momentum"]), eps=float(attrs["eps"]))
            out["outputs/running_mean_new"], out["outputs/running_var_new"] = rm, rv
            leaves["running_mean"].grad = torch.zeros(x["running_mean"].shape, dtype=torch.float64)
            leaves["running_var"].grad = torch.zeros(x["running_var"].shape, dtype=torch.float64)
            del leaves["running_mean"], leaves["running_var"]
            out["grads/running_mean"] = torch.zeros(x["running_mean"].shape, dtype=torch.float64)
            out["grads/running_var"] = torch.zeros(x["running_var"].shape, dtype=torch.float64)
        else:
            shape = (1, -1) + (1,) * (x["x"].ndim - 2)
            y = leaves["gamma"].reshape(shape) * (leaves["x"] - leaves["running_mean"].reshape(shape)) / torch.sqrt(
                leaves["running_var"].reshape(shape) + float(attrs["eps"])) + leaves["beta"].reshape(shape)
            with torch.no_grad():
                reference = F.batch_norm(leaves["x"], leaves["running_mean"], leaves["running_var"], leaves["gamma"],
                                         leaves["beta"], training=False, eps=float(attrs["eps"]))
            torch.testing.assert_close(y, reference, rtol=1e-12, atol=1e-12)
    elif kind in ("avgpool", "maxpool"):
        k = pair(attrs["kernel"])
        s = pair(attrs["stride"]) if "stride" in attrs else k
        p = pair(attrs.get("padding", 0))
        y = F.avg_pool2d(leaves["x"], k, s, p, ceil_mode=False, count_include_pad=True) if kind == "avgpool" \
            else F.max_pool2d(leaves["x"], k, s, p, ceil_mode=False)
    elif kind == "weight_quant":
        y, codes, scale = quantized(leaves["w"], attrs["mode"])
        out["outputs/codes"], out["outputs/scale"] = codes, scale
    elif kind == "spike_quant":
        y = SpikeQuant.apply(leaves["x"], leaves["s"], int(attrs["bits"]))
        out["outputs/levels"] = torch.clamp(torch.round(leaves["x"].detach() / leaves["s"].detach()), 0,
                                            2 ** int(attrs["bits"]) - 1).to(torch.int64)
    elif kind in ("seca1", "seca2"):
        post = leaves["I"] if kind == "seca1" else leaves["I_post"]
        logits = conv1d_channels(gap(post), leaves["k"])
        if kind == "seca2":
            logits = logits + conv1d_channels(channel_map(gap(leaves["I_pre"]), post.shape[1]), leaves["k_pre"])
        y = scale_channels(post, torch.sigmoid(logits))
    else:
        raise AssertionError(kind)
    (y * t(x["grad_y"], False)).sum().backward()
    out["outputs/y"] = y
    out.update({f"grads/{k}": v.grad for k, v in leaves.items()})
    return out


def membn_fold_case(x, attrs):
    T, C = x["I"].shape[0], x["I"].shape[2]
    eps = float(attrs["bn_eps"])
    tc = lambda v: torch.tensor(np.broadcast_to(v if v.ndim == 2 else v[:, None], (T, C)).copy())  # noqa: E731
    lam, alpha, beta = tc(x["lam"]), tc(x["alpha"]), tc(x["beta"])
    theta = tc(x.get("theta", np.ones(T)))
    g, b = tc(x["bn_gamma"]), tc(x["bn_beta"])
    rm, rv = torch.tensor(x["running_mean"]), torch.tensor(x["running_var"])
    k = g / torch.sqrt(rv + eps)
    c = b - k * rm
    alpha_star, beta_star = alpha + beta * k, -beta * c
    lamhat = alpha_star * lam
    I = torch.tensor(x["I"])
    shape = lambda v: v.reshape((1, C) + (1,) * (I.ndim - 3))  # noqa: E731
    u, s_unfolded = torch.zeros_like(I[0]), []
    for step in range(T):  # E9 with the running statistics (eval)
        m = shape(lam[step]) * u + I[step]
        bn = F.batch_norm(m, rm[step], rv[step], g[step], b[step], training=False, eps=eps)
        mhat = shape(alpha[step]) * m + shape(beta[step]) * bn
        s = p2_fire(mhat, shape(theta[step]))
        u = mhat - s
        s_unfolded.append(s)
    u, s_folded = torch.zeros_like(I[0]), []
    for step in range(T):  # vanilla HD-LIF with lamhat and Ihat = alpha* I - beta* (E10)
        m = shape(lamhat[step]) * u + shape(alpha_star[step]) * I[step] - shape(beta_star[step])
        s = p2_fire(m, shape(theta[step]))
        u = m - s
        s_folded.append(s)
    return {"outputs/lamhat": lamhat, "outputs/alpha_star": alpha_star, "outputs/beta_star": beta_star,
            "outputs/s_unfolded": torch.stack(s_unfolded), "outputs/s_folded": torch.stack(s_folded)}


# ----------------------------------------------------------------------------- the test
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small float64 tensors: torch's thread pool only contends with Numba's (50x slower on 2 cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "g.h5"
    write(path)
    return read_file(path)


def rebuild(kind, attrs, fields, group_attrs):
    inputs = {k[len("inputs/"):]: v for k, v in fields.items() if k.startswith("inputs/")}
    if kind in ("hdlif", "lif", "parallel", "membn"):
        return neuron_case(kind, inputs, attrs)
    if kind == "membn_fold":
        return membn_fold_case(inputs, attrs)
    if kind == "model":
        from tests.crosscheck._torch_model import model_case

        return model_case(inputs, attrs, group_attrs)
    return layer_case(kind, inputs, attrs)


def compare(name, kind, fields, ours):
    rtol, atol = PROFILE["model" if kind == "model" else "default"]
    expected = {k for k in fields if not k.startswith("inputs/")}
    assert expected <= set(ours), f"{name}: the PyTorch rebuild does not produce {sorted(expected - set(ours))}"
    worst = 0.0
    for key in sorted(expected):
        got = ours[key].detach().numpy() if isinstance(ours[key], torch.Tensor) else np.asarray(ours[key])
        want = fields[key]
        if want.dtype.kind in "iu":
            assert np.array_equal(got, want), f"{name} {key}"
            continue
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=rtol, atol=atol, err_msg=f"{name} {key}")
        worst = max(worst, float(np.max(np.abs(got.reshape(want.shape) - want), initial=0.0)))
    return worst


KINDS = ("hdlif", "lif", "parallel", "membn", "conv2d", "linear", "batchnorm", "avgpool", "maxpool", "weight_quant",
         "spike_quant", "seca1", "seca2", "membn_fold", "model")


@pytest.mark.parametrize("kind", KINDS)
def test_pytorch_rebuild_of_every_case_agrees(golden, kind):
    cases = {n: c for n, c in golden.items() if c[0]["kind"] == kind}
    assert cases, f"the default file has no {kind} case"
    for name, (attrs, fields, group_attrs) in cases.items():
        ours = rebuild(kind, attrs, fields, group_attrs)
        worst = compare(name, kind, fields, ours)
        print(f"{name}: worst |torch - file| = {worst:.2e}")


def test_model_cases_online_differs_from_stbp_and_is_the_per_step_sum_of_e16(golden):
    """SPEC E16 vs E17 on whole networks: the online gradients are not the STBP ones (asserted for every
    parameter), and they equal (1/|S|) times the sum over t in S of the gradient of CE(o_t) alone,
    computed in PyTorch by one backward per step."""
    from tests.crosscheck._torch_model import per_step_online

    models = {n: c for n, c in golden.items() if c[0]["kind"] == "model"}
    assert len(models) == 2
    for name, (attrs, fields, _) in models.items():
        inputs = {k[len("inputs/"):]: v for k, v in fields.items() if k.startswith("inputs/")}
        summed = per_step_online(inputs, attrs)
        assert len(summed) == len([k for k in fields if k.startswith("grads_online/")])
        for key, grad in summed.items():
            online, stbp = fields[f"grads_online/{key}"], fields[f"grads_stbp/{key}"]
            np.testing.assert_allclose(online, grad.numpy(), rtol=1e-5, atol=1e-8, err_msg=f"{name} {key}")
            assert not np.allclose(online, stbp, rtol=1e-5, atol=1e-8), f"{name} {key}: online equals STBP"
