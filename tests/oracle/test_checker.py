"""The checker cannot be talked round (issue 20, item 4; SPEC section 7 "tolerances").

Every test here starts from a file that passes and changes one thing a file under
test could change: a value, a tolerance attr, a missing group, a misspelled group
or attr, a PyTorch spelling, an unsupported setting. The verdict must follow the
numbers, never the file's own claims.
"""
import json
import shutil

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdlif_ref import neurons
from hdlif_ref.autograd import Tensor
from hdlif_ref.cli import main
from hdlif_ref.oracle import GoldenFileError, check, read_golden, recompute, write
from hdlif_ref.oracle.check import check_case, check_file
from hdlif_ref.oracle.schema import PROFILES

from hdlif_ref.oracle.schema import KINDS


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "g.h5"
    write(path)  # every kind, whole networks included
    return path


@pytest.fixture(scope="module")
def golden(written):
    return read_golden(written, isolate=False)


def copy_of(path, tmp_path, name="copy.h5"):
    target = tmp_path / name
    shutil.copyfile(path, target)
    return target


def edit(path, tmp_path, change):
    bad = copy_of(path, tmp_path)
    with h5py.File(bad, "r+") as f:
        change(f)
    return bad


def statuses(report):
    return {(r.case, r.field): r.status for r in report.rows}


def failing(report):
    return sorted({(r.case, r.field) for r in report.rows if r.status == "FAIL"} |
                  {(c.name, "(case)") for c in report.cases if c.problems})


# ----------------------------------------------------------------------------- a correct file passes
def test_the_written_file_passes_with_every_kind(golden):
    report = check_file(golden)
    assert report.verdict == "PASS", [l for l in report.format() if "FAIL" in l]
    assert {c.kind for c in report.cases} == set(KINDS)
    assert all(r.status == "PASS" for r in report.rows) and not any(c.notes for c in report.cases)
    assert report.verdict_line().startswith("verdict: PASS (profile float64; ")


def test_every_line_prints_its_tolerance_and_every_case_its_settings(golden):
    lines = check_file(golden).format()
    assert lines[1].split()[-3:] == ["rtol", "atol", "result"]
    rows = [l for l in lines if l.rstrip().endswith("PASS") and "settings:" not in l and not l.startswith("verdict")]
    models = [l for l in rows if l.startswith("model_")]
    assert models and all(" 1e-05    1e-08  PASS" in l for l in models)  # the profile's model tolerance
    assert all(" 1e-06    1e-09  PASS" in l or "0e+00    0e+00  PASS" in l for l in rows if l not in models)
    membn = next(l for l in lines if l.startswith("membn_T4 ") and "settings:" in l)
    assert "bn_eps=1e-05" in membn and "bn_mode='train' (file 'training')" in membn and "rtol=1e-06" in membn
    conv = next(l for l in lines if l.startswith("conv2d_k3_s2_p10_binary") and "settings:" in l)
    assert "padding=[1, 0]" in conv and "stride=[2, 2]" in conv and "weight='binary'" in conv
    lif = next(l for l in lines if l.startswith("lif_T4_soft_gamma05") and "settings:" in l)
    assert "reset='soft'" in lif and "gamma=0.5" in lif and "surrogate='triangle'" in lif


# ----------------------------------------------------------------------------- any flipped number is found
def _compared_fields(golden):
    return [(i, path) for i, case in enumerate(golden.cases) for path in case.fields
            if not path.startswith("inputs/")]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_flipping_any_number_of_any_field_fails_exactly_that_field(golden, data):
    """Issue 20 acceptance: a hypothesis-chosen case, field, element and change (a shift well outside the
    tolerance, a sign flip, NaN, infinity; codes and levels: another integer) FAILs that field of that case
    and nothing else."""
    choices = _compared_fields(golden)
    index, path = data.draw(st.sampled_from(choices), label="field")
    case = golden.cases[index]
    value = case.fields[path].copy()
    flat = value.reshape(-1)
    k = data.draw(st.integers(0, flat.size - 1), label="element")
    if value.dtype.kind in "iu":
        flat[k] = flat[k] + data.draw(st.sampled_from([-2, -1, 1, 2]), label="shift")
    else:
        how = data.draw(st.sampled_from(["shift", "negate", "nan", "inf"]), label="how")
        old = flat[k]
        flat[k] = {"shift": old + 1e-3 * (1 + abs(old)), "negate": -old if old != 0 else 1e-3,
                   "nan": np.nan, "inf": -np.inf}[how]
    mutated = type(case)(case.name, case.attrs, dict(case.fields, **{path: value}), case.group_attrs)
    report = check_case(mutated)
    bad = [r.field for r in report.rows if r.status == "FAIL"]
    assert bad == [path] and not report.problems, (case.name, path, k, report.problems)
    row = next(r for r in report.rows if r.field == path)
    assert row.details and f"at {[int(i) for i in np.unravel_index(k, value.shape)]}:" in row.details[0]


def test_one_changed_value_in_the_file_fails_that_case_only(written, tmp_path):
    def change(f):
        ds = f["cases/hdlif_T4_conv/grads_online/theta"]
        values = ds[()]
        values[2] += 1e-3
        ds[...] = values
    report = check(edit(written, tmp_path, change), isolate=False)
    assert report.verdict == "FAIL"
    assert failing(report) == [("hdlif_T4_conv", "grads_online/theta")]
    assert [c.name for c in report.cases if c.status == "FAIL"] == ["hdlif_T4_conv"]
    line = next(l for l in report.format() if l.startswith("hdlif_T4_conv") and "FAIL" in l)
    assert "grads_online/theta" in line and "1 of 4 values out of tolerance" in line
    assert "failing cases: hdlif_T4_conv" in report.verdict_line()


def test_a_failing_spike_says_how_far_the_membrane_was_from_theta(golden):
    """A spike that differs: each bad element is shown with ``m - theta`` (here 0: an exact tie that a
    ``>`` for ``>=`` decides the other way) or, for the quantizer, its distance from the rounding boundary."""
    case = next(c for c in golden.cases if c.name == "lif_T4_hard_triangle")
    m, theta = case.fields["outputs/m"], case.fields["inputs/theta"]
    on = np.argwhere(m == theta[:, None, None])[0]
    s = case.fields["outputs/s"].copy()
    s[tuple(on)] = 1.0 - s[tuple(on)]
    report = check_case(type(case)(case.name, case.attrs, dict(case.fields, **{"outputs/s": s})))
    row = next(r for r in report.rows if r.field == "outputs/s")
    assert row.status == "FAIL" and "m - theta = 0 (a near-tie: rounding may decide)" in row.details[0]
    quant = next(c for c in golden.cases if c.name == "spike_quant_4bit")
    levels = quant.fields["outputs/levels"].copy()
    levels[0, 0] += 1
    row = next(r for r in check_case(type(quant)(quant.name, quant.attrs, dict(quant.fields, **{
        "outputs/levels": levels}))).rows if r.field == "outputs/levels")
    assert row.status == "FAIL" and "from the rounding boundary (k + 1/2)" in row.details[0]


# ----------------------------------------------------------------------------- tolerances are the checker's
def test_garbage_with_a_huge_tolerance_in_the_file_fails(written, tmp_path):
    """Issue 20: every output replaced by 123.0 and attrs rtol = atol = 1e9 passed; now it FAILs, and a
    NOTE says the file's tolerance was ignored."""
    def garbage(f):
        case = f["cases/hdlif_T2"]
        case.attrs["rtol"], case.attrs["atol"] = 1e9, 1e9
        for group in ("outputs", "grads_stbp", "grads_online"):
            for name, ds in case[group].items():
                ds[...] = np.full(ds.shape, 123.0)
    report = check(edit(written, tmp_path, garbage), isolate=False)
    assert report.verdict == "FAIL"
    case = next(c for c in report.cases if c.name == "hdlif_T2")
    assert case.status == "FAIL" and all(r.status == "FAIL" for r in case.rows) and len(case.rows) == 9
    assert (case.rtol, case.atol) == PROFILES["float64"]["default"]
    assert any("rtol=1e+09 is looser than profile float64's 1e-06: ignored" in n for n in case.notes)
    assert {c.name for c in report.cases if c.status == "FAIL"} == {"hdlif_T2"}


def test_a_case_may_tighten_the_tolerance_but_not_loosen_it(written, tmp_path, golden):
    case = next(c for c in golden.cases if c.name == "hdlif_T8")
    s = case.fields["outputs/s"]
    k = np.unravel_index(np.argmax(np.abs(s)), s.shape)  # a large value: the relative part decides
    rtol, atol = PROFILES["float64"]["default"]

    def nudge(factor, attrs=None):
        def change(f):
            values = f["cases/hdlif_T8/outputs/s"][()]
            values[k] = s[k] * (1 + factor * rtol)
            f["cases/hdlif_T8/outputs/s"][...] = values
            for key, value in (attrs or {}).items():
                f["cases/hdlif_T8"].attrs[key] = value
        return statuses(check(edit(written, tmp_path, change), isolate=False, cases=["hdlif"]))[("hdlif_T8",
                                                                                                "outputs/s")]

    assert nudge(0.5) == "PASS"  # inside atol + rtol |x|
    assert nudge(3.0) == "FAIL"  # outside the profile's tolerance
    assert nudge(3.0, {"rtol": 1e-5}) == "FAIL"  # a looser case tolerance is ignored
    assert nudge(0.5, {"rtol": 1e-8}) == "FAIL"  # a tighter one is used
    report = check(written, isolate=False, profile="float32", cases=["hdlif", "model"])  # the checker's profile
    assert report.verdict == "PASS" and {(c.rtol, c.atol) for c in report.cases} == {(1e-4, 1e-5)}


def test_a_float32_port_passes_the_float32_profile_only(tmp_path, golden):
    """A correct float32 implementation (our own kernels in float32, inputs cast to float32) of an HD-LIF
    case: its numbers differ from float64 by float32 rounding; the float32 profile accepts them, the
    float64 one does not (the issue's "11 of 68 fields")."""
    case = next(c for c in golden.cases if c.name == "hdlif_T2")
    x = {k: v.astype(np.float32) for k, v in case.inputs.items()}
    fields = {}
    for group, mode in (("grads_stbp", "stbp"), ("grads_online", "online")):
        leaves = {k: Tensor(x[k].copy(), requires_grad=True) for k in ("I", "lam", "theta")}
        s = neurons.hdlif_seq(leaves["I"], leaves["lam"], leaves["theta"], gradient=mode)
        s.backward(x["grad_s"])
        fields.update({f"{group}/{k}": v.grad.astype(np.float64) for k, v in leaves.items()})
    rec = neurons.hdlif_record(x["I"], x["lam"], x["theta"])
    fields.update({"outputs/s": rec.s, "outputs/u": rec.u, "outputs/m": rec.m})
    fields = {k: np.asarray(v, dtype=np.float64) for k, v in fields.items()}
    fields.update({f"inputs/{k}": v for k, v in case.inputs.items()})  # the file keeps the float64 inputs
    port = type(case)(case.name, case.attrs, fields)
    assert check_case(port, profile="float32").status == "PASS"
    assert check_case(port, profile="float64").status == "FAIL"


# ----------------------------------------------------------------------------- strict by default
def test_a_file_without_gradients_fails_by_default(written, tmp_path):
    def strip(f):
        for case in f["cases"].values():
            for group in ("grads", "grads_stbp", "grads_online"):
                if group in case:
                    del case[group]
    stripped = edit(written, tmp_path, strip)
    report = check(stripped, isolate=False)
    assert report.verdict == "FAIL"
    absent = [r for r in report.rows if r.status == "FAIL"]
    assert absent and all(r.note.startswith("absent: a required field") for r in absent)
    assert ("hdlif_T2", "grads_stbp/lam") in {(r.case, r.field) for r in absent}
    excused = check(stripped, isolate=False, allow_missing=("grads", "grads_stbp", "grads_online"))
    assert excused.verdict == "PASS"
    assert "--allow-missing grads,grads_stbp,grads_online excused" in excused.verdict_line()
    assert len(excused.excused) == len(absent)
    only_online = check(stripped, isolate=False, allow_missing=["grads_online"])
    assert only_online.verdict == "FAIL"  # grads_stbp and grads/ are still required
    with pytest.raises(ValueError, match="unknown group 'grad'; allowed: outputs, grads"):
        check(stripped, isolate=False, allow_missing=["grad"])


def test_a_file_with_nothing_to_compare_fails(written, tmp_path):
    def strip(f):
        for case in f["cases"].values():
            for group in list(case):
                if group != "inputs":
                    del case[group]
    report = check(edit(written, tmp_path, strip), isolate=False,
                   allow_missing=("outputs", "grads", "grads_stbp", "grads_online", "params_after"))
    assert report.verdict == "FAIL" and "nothing was compared" in report.verdict_line()


# ----------------------------------------------------------------------------- unknowns are NOTEs
def test_unknown_groups_fields_and_attrs_are_notes(written, tmp_path):
    def change(f):
        del f["cases/hdlif_T2/grads_stbp"]  # renamed: the misspelled copy is unknown, the real one absent
        f["cases/hdlif_T2/grad_stbp/I"] = np.zeros((2, 3, 8))
        f["cases/hdlif_T2/grads_bptt/I"] = np.zeros((2, 3, 8))
        f["cases/hdlif_T2/outputs/extra"] = np.zeros(3)
        f["cases/membn_T4"].attrs["eps"] = 1e-3
        f["cases/lif_T4_hard_triangle"].attrs["alpha"] = 0.5
        f.attrs["comment"] = "from elsewhere"
    report = check(edit(written, tmp_path, change), isolate=False, cases=["hdlif", "lif", "membn"])
    notes = {c.name: " | ".join(c.notes) for c in report.cases}
    assert "group grad_stbp/ (1 dataset) is not one this checker knows for kind 'hdlif'" in notes["hdlif_T2"]
    assert "group grads_bptt/" in notes["hdlif_T2"]
    assert "field outputs/extra is not one this checker computes" in notes["hdlif_T2"]
    assert "attr eps=0.001 is not one this checker knows for kind 'membn': ignored (did you mean 'bn_eps'?)" \
        in notes["membn_T4"]
    assert "attr alpha=0.5 is not one this checker knows for kind 'lif'" in notes["lif_T4_hard_triangle"]
    assert any("root attr comment=" in n for n in report.notes)
    printed = "\n".join(report.format())
    assert "hdlif_T2                        NOTE group grad_stbp/" in printed
    assert failing(report) == [("hdlif_T2", f"grads_stbp/{n}") for n in ("I", "lam", "theta")]  # still strict


def test_an_unsupported_value_fails_that_case_not_the_file(written, tmp_path):
    def change(f):
        f["cases/membn_T4"].attrs["bn_mode"] = "eval"
        f["cases/lif_T4_hard_triangle"].attrs["surrogate"] = "sigmoid"
        f["cases/conv2d_k1_s1_p0_float"].attrs["groups"] = 2
        f["cases/hdlif_T1"].attrs["kind"] = "izh"
    report = check(edit(written, tmp_path, change), isolate=False)
    problems = {c.name: c.problems for c in report.cases if c.problems}
    assert set(problems) == {"membn_T4", "lif_T4_hard_triangle", "conv2d_k1_s1_p0_float", "hdlif_T1"}
    assert "attr bn_mode='eval' is not implemented by this checker; implemented: train" in problems["membn_T4"][0]
    assert "surrogate='sigmoid' is not implemented" in problems["lif_T4_hard_triangle"][0]
    assert "groups=2 is not implemented by this checker; implemented: 1" in problems["conv2d_k1_s1_p0_float"][0]
    assert problems["hdlif_T1"][0].startswith("kind='izh' is not one this checker knows")
    assert all(c.status == "PASS" for c in report.cases if c.name not in problems)
    assert report.verdict == "FAIL"


def test_case_level_damage_fails_the_case_and_names_the_field(written, tmp_path):
    def change(f):
        del f["cases/hdlif_T2/inputs/I"]
        del f["cases/parallel_T4/outputs/s"]
        f.create_dataset("cases/parallel_T4/outputs/s", data=np.zeros((4, 2, 3, 4), np.float32))
        del f["cases/hdlif_T8/outputs/s"]
        f.create_dataset("cases/hdlif_T8/outputs/s", data=np.ones((8, 3)))
        f["cases/hdlif_T1"].attrs["T"] = 3
        f["cases/hdlif_T4_conv/inputs/I"][0, 0, 0, 0, 0] = np.inf
        f["cases/seca1_C8_K3/inputs/k"][...] = np.zeros(3)
        del f["cases/seca1_C8_K3/inputs/k"]
        f.create_dataset("cases/seca1_C8_K3/inputs/k", data=np.zeros(4))
    report = check(edit(written, tmp_path, change), isolate=False)
    by_case = {c.name: c for c in report.cases}
    assert "inputs/I missing" in by_case["hdlif_T2"].problems[0]
    row = next(r for r in by_case["parallel_T4"].rows if r.field == "outputs/s")
    assert row.status == "FAIL" and "dtype float32; the layout requires float64" in row.note
    row = next(r for r in by_case["hdlif_T8"].rows if r.field == "outputs/s")
    assert row.note == "shape (8, 3); expected (8, 3, 8)"
    assert "inputs/I has shape (1, 3, 8); expected [T, N, ...] with T = 3" in by_case["hdlif_T1"].problems[0]
    assert "inputs/I holds non-finite values" in by_case["hdlif_T4_conv"].problems[0]
    assert "input k has shape (4,); expected [K] with K odd" in by_case["seca1_C8_K3"].problems[0]
    # the float32 output is accepted (and passes) under the float32 profile
    assert check(edit(written, tmp_path, lambda f: (f["cases/parallel_T4/outputs"].__delitem__("s"), f.create_dataset(
        "cases/parallel_T4/outputs/s", data=read_golden(written, isolate=False).cases[
            [c.name for c in read_golden(written, isolate=False).cases].index("parallel_T4")].fields[
            "outputs/s"].astype(np.float32)))), isolate=False, profile="float32", cases=["parallel"]).verdict == "PASS"


DAMAGE = [
    ("format attr", lambda f: f.attrs.__setitem__("format", "other"), "root attribute format='other'"),
    ("version attr", lambda f: f.attrs.__setitem__("version", 3), "root attribute version=3; this checker reads"),
    ("version missing", lambda f: f.attrs.__delitem__("version"), "root attribute 'version' is missing"),
    ("no cases", lambda f: f.__delitem__("cases"), "no group /cases"),
]


@pytest.mark.parametrize("what, change, message", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_file_level_damage_is_one_clear_error(written, tmp_path, what, change, message):
    with pytest.raises(GoldenFileError) as info:
        check(edit(written, tmp_path, change), isolate=False)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("keep", [0, 7, 2000, -300])
def test_truncated_or_foreign_files_are_refused(written, tmp_path, keep):
    data = written.read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(GoldenFileError) as info:
        read_golden(bad, isolate=False)
    assert "golden file" in str(info.value)
    (tmp_path / "text.h5").write_text("not hdf5 at all " * 100)
    with pytest.raises(GoldenFileError, match="not an HDF5 file"):
        read_golden(tmp_path / "text.h5", isolate=False)
    with pytest.raises(GoldenFileError, match="no such file"):
        read_golden(tmp_path / "missing.h5")


def test_isolated_reading_matches_and_times_out(written, golden):
    isolated = read_golden(written, isolate=True)
    assert [c.name for c in isolated.cases] == [c.name for c in golden.cases]
    a = next(c for c in isolated.cases if c.name == "membn_T4").fields["grads_stbp/bn_gamma"]
    assert np.array_equal(a, next(c for c in golden.cases if c.name == "membn_T4").fields["grads_stbp/bn_gamma"])
    with pytest.raises(GoldenFileError, match="took more than"):
        read_golden(written, isolate=True, timeout=1e-3)


# ----------------------------------------------------------------------------- honest foreign files
def test_a_hand_written_file_with_pytorch_spellings_checks(tmp_path, golden):
    """Written with h5py alone, as another implementation would: version 1 root, ``bn_mode="train"``,
    ``bn_weight``/``bn_bias``, a v2 ``batchnorm`` case saying ``bn_mode="training"`` and ``weight``/``bias``,
    ``surrogate="tri"``, extra groups and attrs, and an optional field left out: PASS, with NOTEs."""
    by_name = {c.name: c for c in golden.cases}
    path = tmp_path / "theirs.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(format="hdlif-golden", version=1, dtype="float64", framework="torch 2.13")
        membn = by_name["membn_T4"]
        g = f.create_group("cases/my_membn")
        g.attrs.update(kind="membn", T=4, bn_mode="train", bn_eps=1e-5, note="PyTorch port")
        for path_, value in membn.fields.items():
            path_ = path_.replace("bn_gamma", "bn_weight").replace("bn_beta", "bn_bias")
            if path_ != "grads_online/alpha":  # an optional field left out
                g[path_] = value
        g["debug/m_before_bn"] = membn.fields["outputs/m"]  # an extra group
        lif = by_name["lif_T4_hard_triangle"]
        g = f.create_group("cases/my_lif")
        g.attrs.update(kind="lif", T=4, reset="hard", surrogate="tri", gamma=1.0)
        for path_, value in lif.fields.items():
            g[path_] = value
        bn = by_name["batchnorm_train_4d"]
        g = f.create_group("cases/my_bn")
        g.attrs.update(kind="batchnorm", bn_mode="training", eps=1e-5, momentum=0.1)
        for path_, value in bn.fields.items():
            if path_ not in ("grads/running_mean", "grads/running_var"):  # optional: left out
                g[path_.replace("/gamma", "/weight").replace("/beta", "/bias")] = value
    report = check(path, isolate=False)
    assert report.verdict == "PASS", "\n".join(report.format())
    by_case = {c.name: c for c in report.cases}
    skipped = {(r.case, r.field) for r in report.rows if r.status == "SKIP"}
    assert ("my_membn", "grads_online/alpha") in skipped and ("my_bn", "grads/running_mean") in skipped
    assert any("group debug/" in n for n in by_case["my_membn"].notes)
    assert any("attr note=" in n for n in by_case["my_membn"].notes)
    assert any("inputs/bn_weight read as inputs/bn_gamma (synonym)" in n for n in by_case["my_membn"].notes)
    assert by_case["my_bn"].settings["mode"] == "'train' (file, as 'bn_mode' 'training')"
    assert any("root attr framework=" in n for n in report.notes)


def test_version_1_files_still_check(tmp_path, golden):
    """A v1 file (SPEC section 6) as our previous writer made it: root version 1, membn with
    ``bn_mode="training"``; and with ``bn_mode="train"``: both PASS."""
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(format="hdlif-golden", version=1, dtype="float64")
        for case in golden.cases:
            if case.kind not in ("hdlif", "lif", "parallel", "membn"):
                continue
            g = f.create_group(f"cases/{case.name}")
            g.attrs.update(case.attrs)
            if case.kind == "membn":
                g.attrs["bn_mode"] = "train"
            for name, value in case.fields.items():
                g[name] = value
    report = check(path, isolate=False)
    assert report.verdict == "PASS" and report.version == 1
    assert {c.kind for c in report.cases} == {"hdlif", "lif", "parallel", "membn"}


# ----------------------------------------------------------------------------- API and CLI
def test_report_json_and_case_selection(written, tmp_path, capsys):
    report = check(written, isolate=False, cases=["conv2d", "weight_quant"])
    assert {c.kind for c in report.cases} == {"conv2d", "weight_quant"}
    assert any("not of the selected kinds" in n for n in report.notes)
    data = json.loads(report.to_json())
    assert data["verdict"] == "PASS" and data["profile"] == "float64"
    assert data["cases"][0]["rows"][0]["rtol"] == 1e-6 and "settings" in data["cases"][0]
    with pytest.raises(ValueError, match="unknown kind 'conv'; allowed: hdlif"):
        check(written, isolate=False, cases=["conv"])
    with pytest.raises(ValueError, match="profile='float16'; allowed: float64, float32"):
        check(written, isolate=False, profile="float16")
    out = tmp_path / "report.json"
    assert main(["golden", "--check", str(written), "--json", str(out), "--cases", "seca1,seca2"]) == 0
    assert json.loads(out.read_text())["verdict"] == "PASS"
    assert capsys.readouterr().out.splitlines()[-1].startswith("verdict: PASS")
    bad = edit(written, tmp_path, lambda f: f["cases/seca2_repeat_4to8/outputs/y"].__setitem__((0, 0, 0, 0), 9.0))
    assert main(["golden", "--check", str(bad), "--json", str(out), "--cases", "seca2"]) == 1
    assert json.loads(out.read_text())["verdict"] == "FAIL"
    assert main(["golden", "--list", str(written)]) == 0
    listed = capsys.readouterr().out
    assert "seca2_repeat_4to8" in listed and "kinds this checker knows: hdlif" in listed
    assert main(["golden", str(tmp_path / "x.h5"), "--json", str(out)]) == 2
    assert "--json applies to --check only" in capsys.readouterr().err
