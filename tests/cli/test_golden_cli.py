"""``hdlif-ref golden OUT.h5`` / ``golden --check FILE.h5`` through ``main(argv)`` and as a subprocess."""
import shutil
import subprocess

import h5py
import pytest

from hdlif_ref.cli import main


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "g.h5"
    assert main(["golden", str(path)]) == 0
    return path


def test_golden_then_check_passes(written, capsys):
    assert main(["golden", "--check", str(written)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["case", "field"]
    assert all(line.rstrip().endswith("PASS") for line in lines[1:-1])
    assert lines[-1].endswith("PASS, 0 FAIL, 0 SKIP")


def test_one_changed_value_exits_1_naming_case_and_field(written, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    shutil.copyfile(written, bad)
    with h5py.File(bad, "r+") as f:
        ds = f["cases/membn_T4/outputs/mhat"]
        values = ds[()]
        values[1, 2, 0, 1, 1] += 0.01
        ds[...] = values
    assert main(["golden", "--check", str(bad)]) == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if "FAIL" in line and not line.endswith("FAIL, 0 SKIP")]
    assert len(fails) == 1 and fails[0].split()[:2] == ["membn_T4", "outputs/mhat"]
    assert "1 FAIL" in out.splitlines()[-1]


@pytest.mark.parametrize("damage, message", [
    ("truncate", "golden file"),
    ("remove", "dataset inputs/theta is missing"),
    ("format", "root attribute format='hdlif-checkpoint'"),
])
def test_damaged_files_are_one_line_errors_with_exit_code_2(written, tmp_path, capsys, damage, message):
    bad = tmp_path / "bad.h5"
    if damage == "truncate":
        bad.write_bytes(written.read_bytes()[:5000])
    else:
        shutil.copyfile(written, bad)
        with h5py.File(bad, "r+") as f:
            if damage == "remove":
                del f["cases/parallel_T4/inputs/theta"]
            else:
                f.attrs["format"] = "hdlif-checkpoint"
    assert main(["golden", "--check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("hdlif-ref: error: golden file")


def test_usage_errors(tmp_path, capsys):
    assert main(["golden", "--check", str(tmp_path / "none.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["golden", "--check", str(tmp_path / "none.h5"), "--timeout", "0"]) == 2
    assert "--timeout=0.0 must be > 0" in capsys.readouterr().err
    assert main(["golden"]) == 2
    assert "required: FILE.h5" in capsys.readouterr().err
    assert main(["golden", str(tmp_path / "no" / "dir" / "g.h5")]) == 2
    assert "FILE.h5" in (err := capsys.readouterr().err) and "does not exist" in err


def test_subprocess_write_then_check(tmp_path):
    path = tmp_path / "g.h5"
    done = subprocess.run(f"hdlif-ref golden {path} && hdlif-ref golden --check {path}", shell=True,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and done.stdout.rstrip().endswith("0 FAIL, 0 SKIP")
