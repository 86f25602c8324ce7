"""Implementations of the ``hdlif-ref`` commands (``cli.py`` registers them).

Each module has ``add_arguments(parser)`` and ``run(args) -> int``. :class:`CLIError` lives
here, not in ``cli.py``, so that nothing imports ``cli.py`` (docs/design.md).
"""


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""
