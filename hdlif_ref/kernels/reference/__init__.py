"""Plain-NumPy twins of every Numba kernel: the spec in code, and the tests' reference.

Each twin has the same signature as its kernel. They favour readability over
speed; ``HDLIF_REF_BACKEND=numpy`` runs the whole library on them.
"""
