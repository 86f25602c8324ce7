"""Operating-system errors name the argument they came from; a closed pipe ends quietly (issue 18, item 6).

Subprocess tests run ``python -m hdlif_ref.cli`` from this checkout (the installed
``hdlif-ref`` script may point at another one).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hdlif_ref.cli import main

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: str, limit_blocks: int | None = None, **kwargs) -> subprocess.CompletedProcess:
    def limit():
        if limit_blocks is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_blocks * 1024, limit_blocks * 1024))
    return subprocess.run([sys.executable, "-m", "hdlif_ref.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, preexec_fn=limit, **kwargs)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_golden_check_of_a_directory_says_it_is_a_directory(tmp_path, capsys):
    assert main(["golden", "--check", str(tmp_path)]) == 2
    err = one_line(capsys)
    assert "is a directory" in err and "no such file" not in err


def test_golden_into_a_directory_names_the_argument_and_no_temp_name(tmp_path, capsys):
    assert main(["golden", str(tmp_path)]) == 2
    err = one_line(capsys)
    assert err == f"hdlif-ref golden: FILE.h5 {str(tmp_path)!r}: cannot write: it is a directory; give a file name"
    assert "Errno" not in err and ".tmp" not in err and os.listdir(tmp_path) == []


def test_train_out_under_a_file_names_the_flag(tmp_path, capsys):
    (tmp_path / "FILE").write_text("")
    out = tmp_path / "FILE" / "sub"
    assert main(["train", "--out", str(out), "--epochs", "1", "--quiet"]) == 2
    err = one_line(capsys)
    assert err == f"hdlif-ref train: --out {str(out)!r}: {str(tmp_path / 'FILE')!r} is a file, not a directory"


def test_an_os_error_without_a_matching_argument_is_still_one_line(capsys):
    from hdlif_ref.cli import describe_os_error

    exc = PermissionError(13, "Permission denied", "/etc/shadow")
    assert describe_os_error(exc, "eval", [("CKPT", "/tmp/x.h5")]) == \
        "hdlif-ref: error: '/etc/shadow': Permission denied"
    assert describe_os_error(exc, "eval", [("CKPT", "/etc")]) == \
        "hdlif-ref eval: CKPT '/etc': '/etc/shadow': Permission denied"


def test_a_closed_pipe_ends_quietly():
    """``hdlif-ref info | head -1`` with the reader gone before we write: no message, exit 141."""
    proc = subprocess.Popen([sys.executable, "-m", "hdlif_ref.cli", "info"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b""


def test_info_into_head_prints_one_line_and_nothing_on_stderr():
    done = subprocess.run(f"{sys.executable} -m hdlif_ref.cli info | head -1", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("hdlif-ref ") and len(done.stdout.splitlines()) == 1 and done.stderr == ""


@pytest.mark.parametrize("previous", [False, True])
def test_golden_under_a_file_size_limit_is_one_line_and_leaves_nothing(tmp_path, previous):
    """``(ulimit -f 20; hdlif-ref golden g.h5)``: on the old writer 156 h5py tracebacks, a segmentation
    fault (rc 139) and a ``.g.h5.*.tmp``; now one line, exit 2, the previous file intact."""
    path = tmp_path / "g.h5"
    if previous:
        path.write_bytes(b"previous golden file")
    done = cli("golden", str(path), limit_blocks=20)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (f"hdlif-ref golden: FILE.h5 {str(path)!r}: cannot write: File too large"
                                   + (" (the previous file is unchanged)" if previous else ""))
    assert os.listdir(tmp_path) == (["g.h5"] if previous else [])
    if previous:
        assert path.read_bytes() == b"previous golden file"


def test_train_out_on_a_file_and_resume_of_an_empty_directory_name_their_flags(tmp_path, capsys):
    (tmp_path / "FILE").write_text("")
    assert main(["train", "--out", str(tmp_path / "FILE"), "--epochs", "1", "--quiet"]) == 2
    assert one_line(capsys) == f"hdlif-ref train: --out {str(tmp_path / 'FILE')!r}: is a file, not a directory"
    (tmp_path / "run").mkdir()
    assert main(["train", "--resume", str(tmp_path / "run")]) == 2
    assert one_line(capsys).startswith(f"hdlif-ref train: --resume {str(tmp_path / 'run')!r}: cannot resume: ")


def test_ablation_checks_its_output_before_running(tmp_path, capsys):
    (tmp_path / "FILE").write_text("")
    out = tmp_path / "FILE" / "sub"  # --out is the sweep directory (issue 22)
    assert main(["ablation", "--quick", "--datasets", "digits", "--out", str(out)]) == 2
    line = one_line(capsys)
    assert line.startswith(f"hdlif-ref ablation: --out {str(out)!r}: ")
    assert line.endswith(f"{str(tmp_path / 'FILE')!r} is a file, not a directory")
    assert not (tmp_path / "FILE" / "sub").exists()
