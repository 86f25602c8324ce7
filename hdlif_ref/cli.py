"""``hdlif-ref``: the command-line front door.

Every command is a function ``cmd_<name>(args) -> int`` registered in
:data:`COMMANDS` with the function that adds its arguments. Errors a user can
cause (bad flags, missing files, bad values) print one line and exit with code 2;
an operating-system error names the argument whose path it came from
(``hdlif-ref train: --out 'f/sub': ...``); ``--debug`` shows the traceback instead.
A closed output pipe (``hdlif-ref info | head -1``) ends the command quietly with
exit code 141 (128 + SIGPIPE, as a shell reports a writer whose reader went away).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import platform
import sys
from typing import Callable, Sequence

from ._cli import CLIError
from ._version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` prints one line for every error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CLIError(f"{self.prog}: {message}")


# ------------------------------------------------------------------------ info
def _version_of(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except ImportError:
        return "not installed"


def info_lines() -> list[str]:
    """What ``hdlif-ref info`` prints: versions, Numba threading, kernel backend."""
    from .kernels import get_backend
    from .kernels._threads import threading_info

    lines = [
        f"hdlif-ref     {__version__}",
        f"python        {platform.python_version()} ({platform.machine()}, {platform.system()})",
    ]
    for module in ("numpy", "numba", "scipy", "h5py"):
        lines.append(f"{module:<13} {_version_of(module)}")
    for module, extra in (("sklearn", "data"), ("tqdm", "progress"), ("matplotlib", "viz")):
        lines.append(f"{module:<13} {_version_of(module)} (extra '{extra}')")
    threads = threading_info()
    lines.append(f"numba threads {threads['num_threads']} (threading layer: {threads['threading_layer']})")
    lines.append(f"backend       {get_backend()} (set HDLIF_REF_BACKEND=numba|numpy)")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    print("\n".join(info_lines()))
    return 0


def _add_info(sub: argparse.ArgumentParser) -> None:
    pass


# ----------------------------------------------------------------------- bench
def _add_bench(sub: argparse.ArgumentParser) -> None:
    """``bench`` takes no options here: :func:`main` forwards everything after it to ``python -m benchmarks``."""


def cmd_bench(argv: Sequence[str]) -> int:
    """The end-to-end benchmark: ``python -m benchmarks ARGV`` in a subprocess, its exit code returned.

    ``benchmarks/`` ships with the repository checkout, not with the package, and owns its
    options (``hdlif-ref bench --help`` shows them); the package never imports it.
    """
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "benchmarks", "__main__.py")):
        raise CLIError(f"hdlif-ref bench: no benchmarks/ folder beside the package in {root}; it is part of the "
                       f"repository checkout, not of the installed package: run `python -m benchmarks` in a checkout")
    env = dict(os.environ, BENCHMARKS_PROG="hdlif-ref bench")
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.call([sys.executable, "-m", "benchmarks", *argv], env=env)


# -------------------------------------------------------------------- registry
def _lazy(module: str, attribute: str) -> Callable:
    """A command's function, imported when the command runs (``hdlif-ref info`` stays fast)."""
    def call(arg):
        return getattr(importlib.import_module(f"hdlif_ref._cli.{module}"), attribute)(arg)
    return call


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "info": ("library versions, Numba threading and the active kernel backend", _add_info, cmd_info),
    "train": ("train a network (default: the embedded digits, online, K=1, T=4)",
              _lazy("train", "add_arguments"), _lazy("train", "run")),
    "eval": ("evaluate a checkpoint: accuracy, accuracy from the first t steps, firing rates",
             _lazy("evaluate", "add_arguments"), _lazy("evaluate", "run")),
    "report": ("parameter memory, SOPs, NOPs and energy of a checkpoint or an architecture (SPEC E18-E20)",
               _lazy("report", "add_arguments"), _lazy("report", "run")),
    "deploy": ("convert a checkpoint to a frozen model file (BN and Mem-BN folded, packed ternary codes)",
               _lazy("deploy", "add_deploy_arguments"), _lazy("deploy", "deploy")),
    "run": ("run a frozen model on a dataset's test split: accuracy, payload, SOPs, NOPs, energy",
            _lazy("deploy", "add_run_arguments"), _lazy("deploy", "run")),
    "verify": ("check every equation of the paper (SPEC E1-E20) on seeded random data, on both backends",
               _lazy("verify", "add_arguments"), _lazy("verify", "run")),
    "golden": ("write the golden vectors of SPEC sections 6-7, or --check a file from another implementation",
               _lazy("golden", "add_arguments"), _lazy("golden", "run")),
    "ablation": ("the paper's ablation at small scale: a paired, resumable sweep (Dask optional) -> DIR/results.md",
                 _lazy("ablation", "add_arguments"), _lazy("ablation", "run")),
    "plot": ("PNG plots: spike rasters, membrane traces, training curves, the eps[i, t] matrix (needs matplotlib)",
             _lazy("plot", "add_arguments"), _lazy("plot", "run")),
    "warmup": ("compile every Numba kernel ahead (e.g. in a Docker build) and report the time; later runs load "
               "them from the cache", _lazy("warmup", "add_arguments"), _lazy("warmup", "run")),
    "bench": ("end-to-end speed and memory against PyTorch in the same run (runs python -m benchmarks; needs a "
              "checkout; writes into --out DIR, default a new bench-* folder here)", _add_bench, None),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hdlif-ref", description="HD-LIF reference implementation (arXiv:2410.07547)")
    parser.add_argument("--version", action="version", version=f"hdlif-ref {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.command_parsers = {}  # name -> its parser: main() names the argument an OS error came from
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        parser.command_parsers[name] = sub = subs.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
    return parser


def _path_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(label, value)`` of every string argument given to the command: ``--out`` or a positional's metavar."""
    sub = getattr(parser, "command_parsers", {}).get(getattr(args, "command", None))
    found = []
    for action in (sub._actions if sub is not None else []):
        value = getattr(args, action.dest, None) if action.dest != "help" else None
        if isinstance(value, str) and value:
            label = max(action.option_strings, key=len) if action.option_strings else (
                action.metavar if isinstance(action.metavar, str) else action.dest)
            found.append((label, value))
    return found


def _inside(path: str, value: str) -> bool:
    p, v = os.path.abspath(path), os.path.abspath(value)
    return p == v or p.startswith(v.rstrip(os.sep) + os.sep)


def _first_non_directory(path: str) -> str | None:
    """The first component of ``path`` that exists and is not a directory (the cause of ENOTDIR)."""
    probe = os.path.abspath(path)
    parents = []
    while True:
        parents.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for p in reversed(parents):
        if os.path.exists(p) and not os.path.isdir(p):
            return p
    return None


def describe_os_error(exc: OSError, command: str | None, arguments: list[tuple[str, str]]) -> str:
    """One line for an OS error: the argument whose path it concerns (if any), the path, the reason."""
    from ._safe_files import FileWriteError

    filename = exc.filename if isinstance(exc.filename, str) else None
    # the argument whose path holds the file (the deepest), else the one whose path lies under it (the closest):
    # creating the directory of --out fails on that directory
    matches = [(label, value) for label, value in arguments if filename is not None and _inside(filename, value)]
    label, value = max(matches, key=lambda m: len(os.path.abspath(m[1]))) if matches else (None, None)
    if label is None and filename is not None:
        above = [(label, value) for label, value in arguments if _inside(value, filename)]
        label, value = min(above, key=lambda m: len(os.path.abspath(m[1]))) if above else (None, None)
    same = value is not None and os.path.abspath(filename) == os.path.abspath(value)
    if isinstance(exc, FileWriteError):
        kept = " (the previous file is unchanged)" if exc.kept else ""
        detail = f"cannot write: {exc.reason}{kept}" if same else str(exc)
    elif filename is not None and exc.strerror:
        reason = exc.strerror
        if exc.errno == errno.ENOTDIR:
            culprit = _first_non_directory(filename)
            reason = f"{culprit!r} is a file, not a directory" if culprit else reason
        elif exc.errno == errno.EEXIST and os.path.exists(filename) and not os.path.isdir(filename):
            reason = "is a file, not a directory"  # os.makedirs on an existing file
        detail = reason if same else f"{filename!r}: {reason}"
    else:
        detail = str(exc)
    if label is None:
        return f"hdlif-ref: error: {detail}"
    prefix = f"hdlif-ref {command}: " if command else "hdlif-ref: "
    return f"{prefix}{label} {value!r}: {detail}"


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured output): nothing to flush later
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 success, 1 a check failed, 2 a usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    debug = "--debug" in argv[:command]
    parser = build_parser()
    args = None
    try:
        if command is not None and argv[command] == "bench":  # its options belong to python -m benchmarks
            parser.parse_args(argv[:command + 1])  # global options before it are still checked
            return cmd_bench(argv[command + 1:])
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        code = COMMANDS[args.command][2](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except SystemExit as exc:  # --help and --version exit through argparse
        return int(exc.code or 0)
    except BrokenPipeError:  # the reader of our output went away (| head): not an error of ours
        _quiet_stdout()
        return 141
    except (CLIError, ValueError, OSError, ImportError) as exc:  # what a user can cause; bugs keep their traceback
        if debug:
            raise
        if isinstance(exc, CLIError):
            message = str(exc)
        elif isinstance(exc, OSError) and not isinstance(exc, ImportError):
            command = getattr(args, "command", None)
            message = describe_os_error(exc, command, _path_arguments(parser, args) if args else [])
        else:
            message = f"hdlif-ref: error: {exc}"
        print(message, file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
