"""A small reverse-mode autodiff engine on NumPy arrays (DESIGN.md "Autograd: explicit pairs").

``Tensor`` wraps a float32/float64 array; each op is a ``Function`` with a paired
``forward``/``backward``, listed in ``ops.OPS``. ``gradcheck`` compares any
function's backward with float64 central differences.
"""
from . import ops
from .function import Context, Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .ops import NON_DIFFERENTIABLE, OPS
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad

__all__ = ["Tensor", "Function", "Context", "ops", "OPS", "NON_DIFFERENTIABLE", "no_grad",
           "enable_grad", "is_grad_enabled", "unbroadcast", "gradcheck", "GradcheckError"]
