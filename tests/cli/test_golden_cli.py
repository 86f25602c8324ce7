"""``hdlif-ref golden OUT.h5`` / ``golden --check FILE.h5`` through ``main(argv)`` and as a subprocess."""
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from hdlif_ref.cli import main

ROOT = Path(__file__).resolve().parents[2]
KINDS = "hdlif,lif,parallel,membn,conv2d,weight_quant"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "g.h5"
    assert main(["golden", str(path), "--cases", KINDS]) == 0
    return path


def test_golden_then_check_passes(written, capsys):
    assert main(["golden", "--check", str(written)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("golden file") and lines[1].split()[:2] == ["case", "field"]
    rows = [line for line in lines[2:-1] if "settings:" not in line]
    assert rows and all(line.rstrip().endswith("PASS") for line in rows)
    assert lines[-1].startswith("verdict: PASS (profile float64;") and "0 FAIL, 0 SKIP" in lines[-1]


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
    fails = [line for line in out.splitlines() if " FAIL " in line and not line.startswith("verdict")]
    assert len(fails) == 1 and fails[0].split()[:2] == ["membn_T4", "outputs/mhat"]
    assert "1 FAIL" in out.splitlines()[-1] and "failing cases: membn_T4" in out.splitlines()[-1]


@pytest.mark.parametrize("damage, code, message", [
    ("truncate", 2, "golden file"),
    ("format", 2, "root attribute format='hdlif-checkpoint'"),
    ("remove", 1, "parallel_T4 FAIL input inputs/theta missing"),
])
def test_damaged_files(written, tmp_path, capsys, damage, code, message):
    """A file that cannot be checked at all is a one-line error (exit code 2); a damaged case FAILs (1)."""
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
    assert main(["golden", "--check", str(bad)]) == code
    captured = capsys.readouterr()
    if code == 2:
        err = captured.err.strip()
        assert len(err.splitlines()) == 1 and message in err and err.startswith("hdlif-ref: error: golden file")
    else:
        assert any(message.replace("  ", " ") in " ".join(line.split()) for line in captured.out.splitlines())


def test_usage_errors(tmp_path, capsys):
    assert main(["golden", "--check", str(tmp_path / "none.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["golden", "--check", str(tmp_path / "none.h5"), "--timeout", "0"]) == 2
    assert "--timeout=0.0 must be > 0" in capsys.readouterr().err
    assert main(["golden"]) == 2
    assert "required: FILE.h5" in capsys.readouterr().err
    assert main(["golden", str(tmp_path / "no" / "dir" / "g.h5")]) == 2
    assert "FILE.h5" in (err := capsys.readouterr().err) and "does not exist" in err
    assert main(["golden", "--check", "--list", str(tmp_path / "none.h5")]) == 2
    assert "--check and --list" in capsys.readouterr().err
    assert main(["golden", "--check", str(tmp_path / "none.h5"), "--profile", "float16"]) == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


def test_subprocess_write_then_check(tmp_path):
    path = tmp_path / "g.h5"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(f"hdlif-ref golden {path} --cases hdlif && hdlif-ref golden --check {path}", shell=True,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and done.stdout.rstrip().splitlines()[-1].startswith("verdict: PASS")
