"""Implementations of the ``hdlif-ref`` commands (``cli.py`` registers them).

Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
"""
