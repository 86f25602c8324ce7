"""The module system: ``Parameter``, ``Module`` and ``Sequential`` (PyTorch conventions).

A ``Module`` registers, by attribute assignment, its parameters (``Parameter``),
its buffers (plain ndarrays given to ``register_buffer``: running statistics,
never trained) and its children (other modules). From those it offers
``parameters()``, ``named_parameters()``, ``buffers()``, ``children()``,
``modules()``, ``state_dict()`` / ``load_state_dict(strict=True)``,
``train()`` / ``eval()``, and the two state operations of spiking networks:

* ``reset_state()``: every stateful module (neurons) forgets its state, before a new batch;
* ``detach_state()``: every stateful module cuts its state from the graph, between
  time steps of online training (SPEC E5, E16).

Stateful modules implement ``_reset_own_state`` and ``_detach_own_state``; the two
public methods reach every such module below the one they are called on.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from .autograd import Tensor

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

#: Bumped by every change of any module's children (adding, replacing or removing a submodule),
#: anywhere: a module's cached list of the modules below it (:meth:`Module.named_modules`) is
#: valid only while this number has not moved, so a cached walk can never miss a change.
_tree_version = [0]
#: False: every walk is made afresh (the reference; the A/B measurement flips it).
CACHE_WALKS = True


def _tree_changed() -> None:
    _tree_version[0] += 1


class Parameter(Tensor):
    """A leaf tensor that a module trains (``requires_grad=True`` by default).

    ``lower``: the smallest value of the parameter's domain, or ``None`` (unbounded). The
    optimizers project onto it after every update (``w <- max(w, lower)``, as a Keras
    constraint), so a parameter whose math needs ``w > 0`` (the spike step of E13, the
    threshold) stays in its domain whatever the learning rate (docs/neurons.md, "Domains").
    """

    __slots__ = ("lower",)

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None, lower: float | None = None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)
        if lower is not None and not (isinstance(lower, (int, float, np.floating)) and np.isfinite(lower)):
            raise ValueError(f"Parameter: lower={lower!r} must be a finite number or None")
        if lower is not None and np.any(self.data < lower):
            raise ValueError(f"Parameter: initial values {self.data.min()!r} below lower={lower!r}")
        self.lower = None if lower is None else float(lower)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


STEP_MODES = ("s", "m")


class HookHandle:
    """Returned by ``register_forward_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Module:
    """Base class of layers, neurons and networks.

    ``step_mode`` (class default ``"s"``) says whether the module takes one time step
    ``[N, ...]`` or a sequence ``[T, N, ...]``; see ``set_step_mode``.
    """

    step_mode = "s"

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", [])

    # ------------------------------------------------------------ registration
    # Parameters, buffers and children live in their tables (``_parameters``, ``_buffers``, ``_modules``),
    # which every traversal, ``state_dict`` and ``to()`` read. Each registered value is also kept under its
    # name in the instance ``__dict__`` (the mirror), so that reading ``module.weight`` is an ordinary
    # attribute lookup: without it every read failed the lookup first and went through ``__getattr__``,
    # ~0.7 us, some 250 times per training step of the digits network (docs/performance.md, "5. Python
    # per op"). The methods below change the table and the mirror together; ``__getattr__`` still answers
    # from the tables. A name the class itself defines (a method such as ``forward``, a property, a class
    # default) gets no mirror: the class attribute wins the lookup, as it does without one.
    def _mirror(self, name: str, value: Any) -> None:
        if hasattr(type(self), name):
            self.__dict__.pop(name, None)  # no stale plain value either: the class attribute wins, as it did
        else:
            self.__dict__[name] = value

    def __copy__(self) -> "Module":
        """A shallow copy with tables of its own (the same parameters, buffers and children in them), so that
        registering on the copy leaves the original's tables and mirrors as they were."""
        clone = type(self).__new__(type(self))
        d = dict(self.__dict__)
        for table in ("_parameters", "_buffers", "_modules"):
            d[table] = d[table].copy()
        d["_persistent"], d["_forward_hooks"] = set(d["_persistent"]), list(d["_forward_hooks"])
        d.pop("_walk", None)  # the cached walk of the modules below: made again when asked
        clone.__dict__.update(d)
        return clone

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        buffers = d["_buffers"]
        if (name not in buffers and name not in d["_parameters"] and name not in d["_modules"]
                and not isinstance(value, (Parameter, Module))):
            object.__setattr__(self, name, value)  # a plain attribute (a counter, a state record): no table
            return
        if name in buffers and (value is None or isinstance(value, np.ndarray)):
            buffers[name] = value  # assigning to a buffer's name updates the buffer
            self._mirror(name, value)
            return
        if d["_modules"].pop(name, None) is not None:
            _tree_changed()
        for table in (d["_parameters"], buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            d["_modules"][name] = value
            _tree_changed()
        else:
            d.pop(name, None)  # a registered value's mirror, if any: a class attribute (a property) may take it
            object.__setattr__(self, name, value)
            return
        self._mirror(name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails (the mirror makes that rare): answer from the tables
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self.__dict__.pop(name, None)
                self._persistent.discard(name)
                if table is self._modules:
                    _tree_changed()
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: np.ndarray | None, persistent: bool = True) -> None:
        """Keep ``array`` as state that is saved (if ``persistent``) but not trained."""
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"register_buffer: {name!r} must be an ndarray or None, got {type(array).__name__}")
        self._parameters.pop(name, None)
        if self._modules.pop(name, None) is not None:
            _tree_changed()
        self._buffers[name] = array
        self._mirror(name, array)
        if persistent:
            self._persistent.add(name)
        else:
            self._persistent.discard(name)

    # ------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and all below it, depth first, each once.

        The walk is kept (per module and prefix) until any module's children change anywhere
        (:data:`_tree_version`): the walks that every training step makes (``train``,
        ``detach_state``, ``parameters``, ...) then cost a list iteration.
        """
        if not CACHE_WALKS:
            return self._walk_modules(prefix)
        cached = self.__dict__.get("_walk")
        if cached is not None and cached[0] == _tree_version[0] and cached[1] == prefix:
            return iter(cached[2])
        walk = list(self._walk_modules(prefix))
        object.__setattr__(self, "_walk", (_tree_version[0], prefix, walk))
        return iter(walk)

    def _walk_modules(self, prefix: str) -> Iterator[tuple[str, "Module"]]:
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, module in modules:
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, module in modules:
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ------------------------------------------------------------ state dict
    def _state_entries(self) -> "OrderedDict[str, tuple[Module, str, str]]":
        """name -> (owning module, attribute, "parameter" | "buffer") for everything saved."""
        entries: OrderedDict[str, tuple[Module, str, str]] = OrderedDict()
        for mod_name, module in self.named_modules():
            for name in module._parameters:
                entries[f"{mod_name}.{name}" if mod_name else name] = (module, name, "parameter")
            for name, b in module._buffers.items():
                if b is not None and name in module._persistent:
                    entries[f"{mod_name}.{name}" if mod_name else name] = (module, name, "buffer")
        return entries

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and persistent buffer, by dotted name."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for key, (module, name, kind) in self._state_entries().items():
            value = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            out[key] = np.array(value, copy=True)
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy values from ``state`` into this module's parameters and buffers, in place.

        With ``strict=True`` (default) a missing or unexpected key is an error; a
        shape mismatch is always an error. The message names every offending key.
        Returns ``(missing, unexpected)`` key lists.
        """
        entries = self._state_entries()
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        mismatched = []
        for key, (module, name, kind) in entries.items():
            if key in state:
                target = module._parameters[name].data if kind == "parameter" else module._buffers[name]
                if np.shape(state[key]) != target.shape:
                    mismatched.append(f"{key}: checkpoint {tuple(np.shape(state[key]))}, model {target.shape}")
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems))
        for key, (module, name, kind) in entries.items():
            if key in state:
                target = module._parameters[name].data if kind == "parameter" else module._buffers[name]
                np.copyto(target, np.asarray(state[key]), casting="same_kind")
        return missing, unexpected

    # ------------------------------------------------------------ modes and state
    def train(self, mode: bool = True) -> "Module":
        """Training mode (batch statistics in BN, dropout active); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode (running statistics, no dropout); returns self."""
        return self.train(False)

    def reset_state(self) -> "Module":
        """Every stateful module below (and including) this one forgets its state."""
        for m in self.modules():
            m._reset_own_state()
        return self

    def detach_state(self) -> "Module":
        """Every stateful module below (and including) this one cuts its state from the graph."""
        for m in self.modules():
            m._detach_own_state()
        return self

    def _reset_own_state(self) -> None:
        """Overridden by stateful modules (neurons)."""

    def _detach_own_state(self) -> None:
        """Overridden by stateful modules (neurons)."""

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def to(self, dtype: Any) -> "Module":
        """Cast every parameter and floating buffer to float32 or float64 (in place); returns self."""
        dtype = np.dtype(dtype)
        if dtype not in _FLOATS:
            raise TypeError(f"to: dtype={dtype} is not allowed; use float32 or float64")
        for m in self.modules():
            for p in m._parameters.values():
                p.data = p.data.astype(dtype)
                p.grad = None
            for name, b in m._buffers.items():
                if b is not None and b.dtype in _FLOATS:
                    m._buffers[name] = b.astype(dtype)
                    m._mirror(name, m._buffers[name])
            m._on_dtype_change(dtype)
        return self

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        """Hook for modules that keep other float arrays (neuron state)."""

    def set_step_mode(self, mode: str) -> "Module":
        """``"s"``: modules take one time step ``[N, ...]``; ``"m"``: a whole sequence ``[T, N, ...]``.

        Set on this module and every module below it (SpikingJelly's step modes).
        """
        if mode not in STEP_MODES:
            raise ValueError(f"set_step_mode: mode={mode!r}; allowed: 's' (single step), 'm' (multi step)")
        for m in self.modules():
            object.__setattr__(m, "step_mode", mode)
        return self

    # ------------------------------------------------------------ calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def forward_after(self, previous: "Module", x: Any) -> Any:
        """``self(previous(x))`` computed in one pass, or ``None`` (the default) for the plain two calls.

        :class:`Sequential` asks each module this about its predecessor. A module that can fuse
        with what precedes it (a neuron after its batch norm, when no graph is recorded:
        ``hdlif_ref.neurons.fused``) overrides it, and must leave exactly the state and results
        the two calls would.
        """
        return None

    def register_forward_hook(self, hook: Callable[["Module", tuple, Any], None]) -> "HookHandle":
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle with ``remove()``."""
        self._forward_hooks.append(hook)
        return HookHandle(self._forward_hooks, hook)

    def extra_repr(self) -> str:
        """Settings shown inside ``repr`` (overridden by layers)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}({extra}" if extra else f"{type(self).__name__}("]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Modules applied one after the other; children are named ``0, 1, 2, ...``."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, x: Any) -> Any:
        modules = list(self._modules.values())
        i, count = 0, len(modules)
        while i < count:
            if i + 1 < count:
                fused = modules[i + 1].forward_after(modules[i], x)
                if fused is not None:
                    x = fused
                    i += 2
                    continue
            x = modules[i](x)
            i += 1
        return x
